"""A hand-made bank whose counts are known: cells of topic x difficulty x source x status, and near duplicates."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

KITES = [
    "A kite on a 50 m string makes a 30 degree angle with the flat ground. How high is the kite?",
    "A kite flying on a 50 m string makes a 30 degree angle with flat ground. How high is it?",
    "A kite on a 50 m string makes a 30 degree angle with the ground. How high is the kite?",
]
SQUARES = ["What is 13 squared?", "What is 13 squared? Give the number."]
# Ten unrelated questions for the cells of BANK (pairwise far below the 0.9 cluster threshold).
DISTINCT = [
    "Solve for x: 3x + 4 = 19.", "Why does ice float on water?", "Name the largest planet of the solar system.",
    "Convert 5 miles to kilometres.", "Who wrote the play Hamlet?", "What is the boiling point of ethanol?",
    "How many sides does a hexagon have?", "What does HTTP stand for?", "Translate 'good morning' into French.",
    "Which enzyme breaks down starch in saliva?",
]  # fmt: skip


def batch(
    texts: list[str], topic: str | None, difficulty: int | None, source: str, status: str
) -> list[dict[str, Any]]:
    return [
        {"input": text, "output": "x", "topic": topic, "difficulty": difficulty, "source": source, "status": status}
        for text in texts
    ]


# topic, difficulty, source, status, count
BANK = [
    ("algebra", 1, "curated", "approved", 3),
    ("algebra", 2, "llm", "pending", 2),
    ("algebra", 1, "llm", "rejected", 1),
    ("physics", 3, "curated", "approved", 1),
    ("physics", 5, "imported", "approved", 2),
    (None, None, "curated", "pending", 1),
]


def build_bank(client: TestClient) -> dict[str, str]:
    """The BANK cells (distinct texts per cell), then near duplicates: 3 kites and 2 squares, all geometry/1 pending."""
    examples: list[dict[str, Any]] = []
    for topic, difficulty, source, status, count in BANK:
        examples += batch(DISTINCT[len(examples) : len(examples) + count], topic, difficulty, source, status)
    dupes = [{"input": text, "topic": "geometry", "difficulty": 1, "status": "pending"} for text in KITES + SQUARES]
    response = client.post("/v1/examples", json={"examples": examples + dupes}, params={"on_duplicate": "keep"})
    assert response.status_code == 201, response.text
    return {e["input"]: e["id"] for e in response.json()["examples"]}
