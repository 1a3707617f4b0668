"""Room geometry in unit coordinates (0..1 on both axes), shared by the simulation (walking
distances, slot counts) and the renderer (where things are drawn)."""

from __future__ import annotations

Point = tuple[float, float]
Rect = tuple[float, float, float, float]  # x0, y0, x1, y1

WALL = 0.035
ZONE_RECTS: dict[str, Rect] = {
    "shelf": (0.06, 0.055, 0.44, 0.175),
    "table": (0.28, 0.37, 0.72, 0.55),
    "box": (0.03, 0.68, 0.35, 0.93),
    "door": (0.37, 0.965, 0.63, 1.0),
    "rug": (0.67, 0.62, 0.95, 0.93),
}
SIGN_RECT: Rect = (0.53, 0.03, 0.93, 0.16)

SLOTS: dict[str, tuple[Point, ...]] = {
    "shelf": ((0.12, 0.115), (0.25, 0.115), (0.38, 0.115)),
    "table": ((0.37, 0.46), (0.50, 0.46), (0.63, 0.46)),
    "box": ((0.085, 0.805), (0.19, 0.805), (0.295, 0.805)),
    "door": ((0.39, 0.89), (0.50, 0.89), (0.61, 0.89)),
}
"""Resting places of single objects, ordered left to right (so slot order gives left/right)."""

STAND: dict[str, Point] = {
    "shelf": (0.25, 0.27),
    "table": (0.50, 0.65),
    "box": (0.19, 0.59),
    "door": (0.50, 0.77),
    "rug": (0.81, 0.53),
}
"""Where the person stands to act at each zone."""

START: Point = (0.80, 0.33)
ITEM_SIZE = 0.095
GROUP_ITEM_SIZE = 0.065
PERSON_RADIUS = 0.05
WALK_SPEED = 0.3  # units per second


def group_positions(count: int) -> tuple[Point, ...]:
    """Grid places of a counting group on the rug, rows of at most 4, centred."""
    x0, y0, x1, y1 = ZONE_RECTS["rug"]
    rows = [min(4, count - 4 * r) for r in range((count + 3) // 4)]
    step_x, step_y = (x1 - x0) / 4.4, (y1 - y0) / 3.0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return tuple(
        (cx + (c - (n - 1) / 2) * step_x, cy + (r - (len(rows) - 1) / 2) * step_y)
        for r, n in enumerate(rows)
        for c in range(n)
    )


def distance(a: Point, b: Point) -> float:
    return ((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2) ** 0.5
