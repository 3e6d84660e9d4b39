// vibeset UI: keyboard shortcuts and the remembered rater id. Every page works without it.
(function () {
  "use strict";
  var pending = null;
  var go = { c: "/ui/catalog", r: "/ui/review", p: "/ui/playground", h: "/ui/" };
  var RATER = "vibeset.rater";
  function typing(el) {
    return el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT" || el.isContentEditable);
  }
  function remember(id) { try { window.localStorage.setItem(RATER, id); } catch (err) { /* storage off */ } }
  function remembered() { try { return window.localStorage.getItem(RATER) || ""; } catch (err) { return ""; } }
  var busy = false;
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(document.activeElement)) return;
    // review keys: y / n / 1-5 judge, s skips, u undoes (elements carry data-key)
    var target = document.querySelector('[data-key="' + (e.key.length === 1 ? e.key.toLowerCase() : "") + '"]');
    if (target && !busy) {
      e.preventDefault();
      busy = true;  // one judgement per key press, even when the key repeats
      target.click();
      return;
    }
    if (e.key === "/") {
      var box = document.querySelector("[data-search]");
      if (box) { e.preventDefault(); box.focus(); if (box.select) box.select(); }
    } else if (pending === "g" && go[e.key]) {
      window.location.href = go[e.key];
    }
    pending = e.key === "g" ? "g" : null;
  });
  document.addEventListener("DOMContentLoaded", function () {
    var rater = document.querySelector("[data-rater]");
    if (!rater) return;
    if (rater.value) {
      remember(rater.value);
    } else if (remembered()) {  // come back as who you were: straight to your queue
      rater.value = remembered();
      rater.form.submit();
    }
    rater.form.addEventListener("submit", function () { remember(rater.value.trim()); });
  });
})();
