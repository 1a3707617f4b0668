"""Draws the frames of a simulated episode: a top-down room at any square size.

Sprites are drawn at 4x and downsampled so that shapes and patterns stay legible to a ViT at
192 px; the person is a few plain ellipses whose hands show the action being done.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from taskmem_bench.datasets.mini.layout import (
    GROUP_ITEM_SIZE, ITEM_SIZE, PERSON_RADIUS, SIGN_RECT, START, WALL, ZONE_RECTS, Point, Rect,
    group_positions,
)
from taskmem_bench.datasets.mini.vocab import Item
from taskmem_bench.datasets.mini.world import Act, World

RGB = tuple[int, int, int]
COLOUR_RGB: dict[str, RGB] = {
    "red": (214, 39, 40),
    "green": (44, 160, 44),
    "blue": (31, 90, 220),
    "yellow": (240, 205, 30),
    "purple": (148, 60, 190),
    "orange": (250, 130, 20),
}
FLOOR, WALL_RGB, OUTLINE = (226, 218, 198), (70, 70, 78), (30, 30, 30)
ZONE_STYLE: dict[str, tuple[RGB, RGB]] = {  # fill, border
    "shelf": ((120, 84, 52), (80, 55, 35)),
    "table": ((168, 124, 80), (110, 80, 50)),
    "box": ((205, 180, 135), (140, 110, 70)),
    "door": ((140, 95, 50), (90, 60, 30)),
    "rug": ((92, 142, 152), (58, 100, 110)),
}
DOORMAT: Rect = (0.34, 0.84, 0.66, 0.94)
SHIRT, HAIR, SKIN, SHADOW = (38, 110, 132), (70, 45, 30), (236, 196, 160), (170, 164, 150)
SUPERSAMPLE = 4
GROW_SECONDS = 0.6


def _unit_polygon(shape: str) -> list[tuple[float, float]]:
    """Outline of a shape in a unit box, as points."""
    def ring(n: int, radius: float, phase: float) -> list[tuple[float, float]]:
        return [(0.5 + radius * math.cos(phase + 2 * math.pi * k / n),
                 0.5 + radius * math.sin(phase + 2 * math.pi * k / n)) for k in range(n)]

    if shape == "square":
        return [(0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.1, 0.9)]
    if shape == "triangle":
        return [(0.5, 0.06), (0.95, 0.9), (0.05, 0.9)]
    if shape == "diamond":
        return [(0.5, 0.02), (0.92, 0.5), (0.5, 0.98), (0.08, 0.5)]
    if shape == "hexagon":
        return ring(6, 0.47, 0.0)
    if shape == "star":
        outer, inner = ring(5, 0.5, -math.pi / 2), ring(5, 0.22, -math.pi / 2 + math.pi / 5)
        return [p for pair in zip(outer, inner) for p in pair]
    raise ValueError(f"unknown shape {shape!r}")


def _erode(mask: Image.Image, pixels: int) -> np.ndarray:
    return np.asarray(mask.filter(ImageFilter.MinFilter(2 * pixels + 1))) > 127


@cache
def sprite(item: Item, pattern: str, px: int) -> Image.Image:
    """An RGBA sprite of an object, ``px`` wide."""
    big = px * SUPERSAMPLE
    mask = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask)
    if item.shape == "circle":
        draw.ellipse((0.04 * big, 0.04 * big, 0.96 * big, 0.96 * big), fill=255)
    else:
        draw.polygon([(x * big, y * big) for x, y in _unit_polygon(item.shape)], fill=255)
    outer = np.asarray(mask) > 127
    inner = _erode(mask, SUPERSAMPLE)
    ys, xs = np.mgrid[0:big, 0:big]
    rgba = np.zeros((big, big, 4), np.uint8)
    rgba[outer, :3] = OUTLINE
    rgba[inner, :3] = COLOUR_RGB[item.colour]
    alpha = outer.copy()
    if pattern == "striped":
        rgba[inner & ((ys // (2 * SUPERSAMPLE)) % 2 == 1), :3] = 255
    elif pattern == "dotted":
        period = 6 * SUPERSAMPLE
        dx, dy = xs % period - period / 2, ys % period - period / 2
        dots = dx**2 + dy**2 < (period / 4) ** 2
        rgba[inner & dots, :3] = 255
    elif pattern == "hollow":
        alpha &= ~_erode(mask, 2 * SUPERSAMPLE)
    rgba[..., 3] = np.where(alpha, 255, 0)
    image = Image.fromarray(rgba, "RGBA").convert("RGBa")
    return image.resize((px, px), Image.Resampling.LANCZOS).convert("RGBA")


@cache
def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=px)


class Renderer:
    """Frames of one episode; ``frame(t)`` is a pure function of the world and ``t``."""

    def __init__(self, world: World, size: int) -> None:
        self.world, self.size = world, size
        self.item_px = max(6, round(ITEM_SIZE * size))
        self.group_px = max(5, round(GROUP_ITEM_SIZE * size))
        self.radius = PERSON_RADIUS * size
        self.background = self._background()
        self.timeline = sorted([*world.walks, *world.acts], key=lambda e: e.t0)
        self.boards = {None: self._board(None)} | {s.word: self._board(s.word) for s in world.signs}

    def px(self, point: Point) -> tuple[float, float]:
        return point[0] * self.size, point[1] * self.size

    def box(self, rect: Rect) -> tuple[float, float, float, float]:
        x0, y0, x1, y1 = rect
        return x0 * self.size, y0 * self.size, x1 * self.size - 1, y1 * self.size - 1

    def _background(self) -> Image.Image:
        image = Image.new("RGB", (self.size, self.size), WALL_RGB)
        draw = ImageDraw.Draw(image)
        draw.rectangle(self.box((WALL, WALL, 1 - WALL, 1 - WALL)), fill=FLOOR)
        draw.rectangle(self.box(DOORMAT), fill=(188, 184, 172))
        border = max(1, round(self.size / 96))
        for zone, (fill, edge) in ZONE_STYLE.items():
            width = 3 * border if zone == "box" else border  # a box has thick walls
            draw.rectangle(self.box(ZONE_RECTS[zone]), fill=fill, outline=edge, width=width)
        return image

    def _board(self, word: str | None) -> Image.Image:
        x0, y0, x1, y1 = self.box(SIGN_RECT)
        board = Image.new("RGB", (round(x1 - x0) + 1, round(y1 - y0) + 1), (250, 250, 250))
        draw = ImageDraw.Draw(board)
        draw.rectangle((0, 0, board.width - 1, board.height - 1), outline=OUTLINE, width=1)
        if word is not None:
            font = _font(max(8, round(0.085 * self.size)))
            left, top, right, bottom = draw.textbbox((0, 0), word, font=font)
            draw.text(((board.width - (right - left)) / 2 - left,
                       (board.height - (bottom - top)) / 2 - top), word, fill=(0, 0, 0), font=font)
        return board

    def frame(self, t: float) -> np.ndarray:
        image = self.background.copy()
        word = next((s.word for s in self.world.signs if s.t0 <= t < s.t1), None)
        image.paste(self.boards[word], tuple(round(v) for v in self.box(SIGN_RECT)[:2]))
        for rest in self.world.resting:
            if rest.t0 <= t < rest.t1:
                scale = _pop(t, rest.t0, rest.t1, rest.grow, rest.shrink)
                self._paste(image, sprite(rest.item, rest.pattern, self.item_px), rest.pos, scale)
        for group in self.world.groups:
            if group.t0 <= t < group.t1:
                scale = _pop(t, group.t0, group.t1, True, True)
                for pos in group_positions(group.count):
                    self._paste(image, sprite(group.item, "solid", self.group_px), pos, scale)
        self._person(image, t)
        return np.asarray(image)

    def _paste(self, image: Image.Image, art: Image.Image, pos: Point, scale: float) -> None:
        if scale < 1.0:
            side = max(1, round(art.width * scale))
            art = art.resize((side, side), Image.Resampling.BILINEAR)
        x, y = self.px(pos)
        image.paste(art, (round(x - art.width / 2), round(y - art.height / 2)), art)

    # -- the person -----------------------------------------------------------------------------

    def _where(self, t: float) -> tuple[Point, float, Act | None]:
        """Position, heading (radians) and current act of the person at ``t``."""
        position, heading, act = START, -math.pi / 2, None
        for event in self.timeline:
            if event.t0 > t:
                break
            if isinstance(event, Act):
                heading = _angle(position, event.target)
                act = event if t < event.t1 else None
            else:
                heading = _angle(event.p0, event.p1)
                share = min(1.0, (t - event.t0) / max(event.t1 - event.t0, 1e-6))
                position = (event.p0[0] + share * (event.p1[0] - event.p0[0]),
                            event.p0[1] + share * (event.p1[1] - event.p0[1]))
                act = None
        return position, heading, act

    def _person(self, image: Image.Image, t: float) -> None:
        position, heading, act = self._where(t)
        cx, cy = self.px(position)
        radius, scale = self.radius, 1.0
        progress = 0.0 if act is None else (t - act.t0) / (act.t1 - act.t0)
        elapsed = 0.0 if act is None else t - act.t0
        hands = [(heading - math.pi / 2, radius), (heading + math.pi / 2, radius)]
        reach_to = None
        if act is not None:
            if act.kind == "spins":
                heading += 4 * math.pi * progress
                hands = [(heading - math.pi / 2, radius), (heading + math.pi / 2, radius)]
            elif act.kind == "jumps":
                scale = 1 + 0.3 * abs(math.sin(2 * math.pi * progress))
            elif act.kind == "waves":
                swing = math.radians(50 + 35 * math.sin(2 * math.pi * 3 * elapsed))
                hands[1] = (heading + swing, 1.6 * radius)
            elif act.kind == "claps":
                spread = math.radians(15 + 55 * (0.5 + 0.5 * math.cos(2 * math.pi * 2.5 * elapsed)))
                hands = [(heading - spread, 1.2 * radius), (heading + spread, 1.2 * radius)]
            elif act.kind == "reach":
                reach_to = (self.px(act.target), math.sin(math.pi * progress))
        draw = ImageDraw.Draw(image)
        r = radius * scale
        if scale > 1.0:
            draw.ellipse((cx - radius, cy - radius + 3, cx + radius, cy + radius + 3), fill=SHADOW)
        points = [(cx + d * scale * math.cos(a), cy + d * scale * math.sin(a)) for a, d in hands]
        if reach_to is not None:
            (tx, ty), extent = reach_to
            points[1] = (points[1][0] + extent * (tx - points[1][0]),
                         points[1][1] + extent * (ty - points[1][1]))
        for hx, hy in points:
            draw.line((cx, cy, hx, hy), fill=SHIRT, width=max(2, round(r / 3)))
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=SHIRT, outline=OUTLINE)
        head = 0.6 * r
        fx, fy = cx + 0.25 * r * math.cos(heading), cy + 0.25 * r * math.sin(heading)
        draw.ellipse((fx - head, fy - head, fx + head, fy + head), fill=HAIR)
        nx, ny = fx + 0.45 * head * math.cos(heading), fy + 0.45 * head * math.sin(heading)
        draw.ellipse((nx - head / 2, ny - head / 2, nx + head / 2, ny + head / 2), fill=SKIN)
        hand = max(1.5, 0.28 * r)
        for hx, hy in points:
            draw.ellipse((hx - hand, hy - hand, hx + hand, hy + hand), fill=SKIN, outline=OUTLINE)
        for held in self.world.carried:
            if held.t0 <= t < held.t1:
                self._paste(image, sprite(held.item, held.pattern, self.item_px),
                            (points[1][0] / self.size, points[1][1] / self.size), 0.8)


def _angle(a: Point, b: Point) -> float:
    return math.atan2(b[1] - a[1], b[0] - a[0])


def _pop(t: float, t0: float, t1: float, grow: bool, shrink: bool) -> float:
    """Scale of an object that pops in after ``t0`` and/or out before ``t1``."""
    scale = 1.0
    if grow:
        scale = min(scale, (t - t0) / GROW_SECONDS)
    if shrink:
        scale = min(scale, (t1 - t) / GROW_SECONDS)
    return max(0.15, min(1.0, scale))
