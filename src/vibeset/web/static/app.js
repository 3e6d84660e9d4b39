// vibeset UI: keyboard shortcuts and the remembered rater id. Pages work without it.
(function () {
  "use strict";
  var pending = null;
  var go = { c: "/ui/catalog", r: "/ui/review", p: "/ui/playground", h: "/ui/" };
  function typing(el) {
    return el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT" || el.isContentEditable);
  }
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(document.activeElement)) return;
    if (e.key === "/") {
      var box = document.querySelector("[data-search]");
      if (box) { e.preventDefault(); box.focus(); box.select && box.select(); }
    } else if (pending === "g" && go[e.key]) {
      window.location.href = go[e.key];
    } else if (e.key === "j" || e.key === "k") {
      // move between review rows: focus the row's first button
      var rows = Array.prototype.slice.call(document.querySelectorAll("tr.pair"));
      if (!rows.length) return;
      var current = rows.findIndex(function (r) { return r.contains(document.activeElement); });
      var next = Math.max(0, Math.min(rows.length - 1, current + (e.key === "j" ? 1 : -1)));
      var button = rows[next].querySelector("button");
      if (button) { e.preventDefault(); button.focus(); rows[next].scrollIntoView({ block: "nearest" }); }
    }
    pending = e.key === "g" ? "g" : null;
  });
  document.addEventListener("DOMContentLoaded", function () {
    var rater = document.querySelector("[data-rater]");
    if (!rater) return;
    try { rater.value = window.localStorage.getItem("vibeset.rater") || ""; } catch (err) { /* storage off */ }
    document.querySelectorAll("form.judge").forEach(function (form) {
      form.addEventListener("submit", function (e) {
        var id = rater.value.trim();
        if (!id) { e.preventDefault(); rater.focus(); rater.setCustomValidity("enter your rater id first"); rater.reportValidity(); return; }
        rater.setCustomValidity("");
        try { window.localStorage.setItem("vibeset.rater", id); } catch (err) { /* storage off */ }
        form.querySelector("[data-rater-copy]").value = id;
      });
    });
  });
})();
