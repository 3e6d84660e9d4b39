"""Regenerate the starter workspace's sample files (src/vibeset/starter/*.csv) deterministically.

The sample is synthetic on purpose: a small catalog of 300 short videos of ten kinds (cooking, travel,
workouts, ASMR, news, sketches, nature, true crime, pets, gaming) whose descriptions are built from
phrases that move each vibe, three human raters whose ratings follow those vibes with rater noise
and a few "not sure" answers, and forty users who watch the kinds they like. It exists so that
``vibeset init`` gives a new user a workspace that runs end to end in a minute, and shows every file
format; it is not evidence about anything. Run: ``python scripts/starter_data.py``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "src" / "vibeset" / "starter"
VIBES = ("calming", "energetic", "funny", "wholesome", "educational", "suspenseful")
#: kind -> (tags, latent vibe means, title stems, subjects)
KINDS = {
    "cooking": ("food|how-to", (3.0, 2.0, 2.0, 4.0, 4.0, 1.0),
                ["One-pan {s}", "Grandma's {s}", "15-minute {s}", "The perfect {s}"],
                ["lemon pasta", "miso ramen", "sourdough loaf", "chickpea curry", "apple galette", "dumplings"]),
    "travel": ("travel|vlog", (3.5, 3.0, 2.5, 3.5, 3.0, 1.5),
               ["48 hours in {s}", "Alone in {s}", "Night train to {s}", "Cheap eats in {s}"],
               ["Lisbon", "Hokkaido", "the Faroe Islands", "Oaxaca", "Tbilisi", "the Scottish Highlands"]),
    "workout": ("fitness|how-to", (1.5, 5.0, 1.5, 2.5, 3.0, 1.0),
                ["20-minute {s}", "No-equipment {s}", "{s} for beginners", "Brutal {s} challenge"],
                ["HIIT", "core workout", "kettlebell flow", "stair sprint", "mobility routine", "boxing drill"]),
    "asmr": ("asmr|relaxation", (5.0, 1.0, 1.5, 3.0, 1.5, 1.0),
             ["{s} ASMR", "Sleepy {s}", "Soft-spoken {s}", "{s}, no talking"],
             ["rain on a tin roof", "page turning", "wood carving", "tea ceremony", "brushing sounds", "typewriter"]),
    "news": ("news|explainer", (1.5, 2.5, 1.0, 1.5, 4.5, 3.0),
             ["{s}, explained", "What {s} means for you", "Inside {s}", "{s}: the week in review"],
             ["the housing crisis", "the chip shortage", "the drought", "the election count", "the rail strike", "rising sea levels"]),
    "sketch": ("comedy|sketch", (2.0, 4.0, 5.0, 3.0, 1.0, 1.5),
               ["When {s}", "Every {s} ever", "{s} gone wrong", "If {s} were honest"],
               ["your flatmate cooks", "group project", "job interview", "wedding speech", "IT support call", "family road trip"]),
    "nature": ("nature|documentary", (4.5, 2.0, 1.5, 3.5, 4.5, 2.5),
               ["The secret life of {s}", "A year with {s}", "{s} up close", "Where {s} live"],
               ["otters", "honeybees", "snow leopards", "coral reefs", "fireflies", "humpback whales"]),
    "truecrime": ("true crime|documentary", (1.0, 2.0, 1.0, 1.0, 3.0, 5.0),
                  ["The {s} case", "Who took {s}?", "{s}: the missing hours", "Unsolved: {s}"],
                  ["lighthouse keeper", "museum diamond", "night ferry", "lake house", "vanished hiker", "forged will"]),
    "pets": ("pets|animals", (3.0, 3.0, 4.0, 5.0, 1.5, 1.0),
             ["{s} meets the new puppy", "{s}'s first snow", "Rescue {s} learns to trust", "{s} vs the vacuum"],
             ["Biscuit", "a shy greyhound", "Mochi the cat", "an old tortoise", "a tiny kitten", "a one-eyed pug"]),
    "gaming": ("gaming|let's play", (1.5, 4.0, 3.0, 2.0, 1.5, 4.0),
               ["{s} speedrun", "Surviving {s} on hard mode", "{s}: final boss", "First time playing {s}"],
               ["a horror classic", "the cave level", "a farming sim", "a roguelike", "the castle map", "a racing game"]),
}
#: phrase -> how it moves each vibe (the descriptions carry the signal a text model can learn)
PHRASES = {
    "Slow, quiet and unhurried, with gentle music.": (1.2, -1.0, 0, 0.3, 0, -0.5),
    "Fast cuts, loud music and a countdown timer.": (-1.0, 1.2, 0, 0, 0, 0.5),
    "Packed with jokes, bloopers and deadpan asides.": (-0.3, 0.5, 1.5, 0.3, -0.5, 0),
    "A heartwarming moment with family and friends.": (0.3, 0, 0.3, 1.4, 0, -0.3),
    "Explained step by step, with the numbers on screen.": (0, 0, -0.3, 0, 1.4, 0),
    "Ends on a cliffhanger that keeps you guessing.": (-0.8, 0.3, -0.3, -0.5, 0, 1.5),
    "Shot in one long take at dawn.": (0.8, -0.5, 0, 0.2, 0, 0),
    "Chaotic, noisy and very much live.": (-0.8, 1.0, 0.6, 0, -0.3, 0.3),
    "Calm narration and soft natural sound.": (1.0, -0.6, 0, 0.3, 0.5, 0),
    "Tense music and a ticking clock.": (-0.8, 0.6, -0.3, -0.3, 0, 1.2),
}
PARTS = 5  # videos per subject: 10 kinds x 6 subjects x 5 = 300 videos
JUDGED = 100  # videos the raters judged (about half land in golden test)
RATERS = {"alice": 0.6, "bob": 0.9, "chen": 0.75}  # rater -> noise (sd on the 1-5 scale)
#: survey tags raters answered: vibe names, aliases the taxonomy maps, and one it does not
TAGS = {"calming": ["calming", "relaxing"], "energetic": ["energetic"], "funny": ["funny", "hilarious"],
        "wholesome": ["wholesome"], "educational": ["educational", "informative"], "suspenseful": ["suspenseful"]}
UNMATCHED = "nostalgic"


def catalog(rng: np.random.Generator) -> list[dict]:
    videos, number = [], 1
    phrases = list(PHRASES)
    for kind, (tags, means, stems, subjects) in KINDS.items():
        for i, subject in enumerate(subjects * PARTS):
            stem = stems[(i + number) % len(stems)]
            chosen = rng.choice(len(phrases), size=2, replace=False)
            latent = np.array(means, dtype=float) + sum(np.array(PHRASES[phrases[c]]) for c in chosen)
            latent += rng.normal(0, 0.3, len(VIBES))
            title = stem.format(s=subject)
            title = title[0].upper() + title[1:]
            if i >= len(subjects):
                title += f" (part {1 + i // len(subjects)})"
            kind_name = kind.replace("truecrime", "true crime")
            article = "an" if kind_name[0] in "aeiou" else "a"
            description = (f"{title}: {article} {kind_name} video about "
                           f"{subject}. {phrases[chosen[0]]} {phrases[chosen[1]]}")
            videos.append({"video_id": f"v{number:03d}", "title": title, "description": description, "tags": tags,
                           "channel": f"{kind}-channel-{1 + i % 3}", "latent": np.clip(latent, 1, 5)})
            number += 1
    return videos


def judgements(rng: np.random.Generator, videos: list[dict]) -> list[list[str]]:
    rows = []
    judged = rng.choice(len(videos), size=JUDGED, replace=False)
    for row in sorted(judged):
        video = videos[row]
        for rater, noise in RATERS.items():
            if rng.random() < 0.15:  # not every rater saw every video
                continue
            for v, vibe in enumerate(VIBES):
                if rng.random() < 0.03:
                    rating = -1  # "not sure"
                else:
                    rating = int(np.clip(np.rint(video["latent"][v] + rng.normal(0, noise)), 1, 5))
                rows.append([rater, video["video_id"], str(rng.choice(TAGS[vibe])), str(rating)])
            if rng.random() < 0.3:
                rows.append([rater, video["video_id"], UNMATCHED, str(int(rng.integers(1, 6)))])
    return rows


def interactions(rng: np.random.Generator, videos: list[dict]) -> list[list[str]]:
    kinds = list(KINDS)
    by_kind = {k: [v for v in videos if v["channel"].startswith(k)] for k in kinds}
    start, rows = 1_700_000_000, []
    for user in range(1, 41):
        liked = rng.choice(len(kinds), size=2, replace=False)
        seen: set[str] = set()
        for _ in range(int(rng.integers(12, 26))):
            kind = kinds[int(rng.choice(liked))] if rng.random() < 0.75 else kinds[int(rng.integers(len(kinds)))]
            video = by_kind[kind][int(rng.integers(len(by_kind[kind])))]
            if video["video_id"] in seen:
                continue
            seen.add(video["video_id"])
            rating = 4 + int(rng.random() < 0.5) if kind in (kinds[i] for i in liked) else int(rng.integers(1, 4))
            rows.append([f"user{user:02d}", video["video_id"], str(rating), str(start + int(rng.integers(0, 60 * 86400)))])
    return sorted(rows, key=lambda r: (r[0], int(r[3])))


def write(name: str, header: list[str], rows: list[list[str]]) -> None:
    with open(OUT / name, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def main() -> None:
    rng = np.random.default_rng(14)
    videos = catalog(rng)
    write("catalog.csv", ["video_id", "title", "description", "tags", "channel"],
          [[v["video_id"], v["title"], v["description"], v["tags"], v["channel"]] for v in videos])
    write("judgements.csv", ["rater", "video_id", "tag", "rating"], judgements(rng, videos))
    write("interactions.csv", ["user_id", "video_id", "rating", "timestamp"], interactions(rng, videos))


if __name__ == "__main__":
    main()
