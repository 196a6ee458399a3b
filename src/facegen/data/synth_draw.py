"""Drawing one synthetic face for facegen's built-in data set.

A face is drawn at twice the final resolution on a canvas with a margin, in an upright
frame whose eyes, nose and mouth sit on CelebA's mean aligned landmarks. One affine warp
then applies the image's pose (roll, scale, shift) and a 2x box reduction antialiases every
edge. Shading comes from nested, slightly offset copies of a shape (smooth once reduced,
far cheaper than per-pixel maths) plus one global light gradient, so the faces read as
lit, rounded objects rather than flat stickers.

All coordinates below are in final-image pixels of the upright frame (x right, y down);
``_Painter`` maps them onto the supersampled canvas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from facegen.data.celeba import ALIGNED_HEIGHT, ALIGNED_WIDTH

SCALE = 2  # supersampling factor
PAD = 16  # canvas margin, so the pose warp never samples outside the drawing
CANVAS_SIZE = ((ALIGNED_WIDTH + 2 * PAD) * SCALE, (ALIGNED_HEIGHT + 2 * PAD) * SCALE)
MID_X = 88.5  # midpoint of CelebA's mean eye positions (69, 111) and (108, 111)
EYE_Y = 111.0
LONG_STYLES = ("bob", "long", "curly")  # hair that falls past the ears

Color = tuple[float, float, float]
Point = tuple[float, float]
Fill = float | tuple[int, ...] | str  # what ImageDraw fills with: a grey level, RGB(A), a name


@dataclass(frozen=True)
class Identity:
    """Traits that stay the same across every image of one person (lengths in pixels)."""

    male: bool
    skin: Color
    hair_color: Color
    hair_style: str  # crew, short, bob, long, curly, receding, bald
    hair_texture: str  # straight, wavy, curly
    bangs: bool
    parting: float  # -1..1: where the hair parts
    hair_volume: float  # hair thickness around the skull
    hair_length: float  # how far long hair falls below the chin
    eye_color: Color
    eye_spacing: float  # half the distance between the pupils
    eye_offset: float  # vertical offset of both eyes
    eye_width: float  # half width of the eye opening
    eye_open: float  # height of the upper lid above the eye centre
    iris_radius: float
    brow_thickness: float
    brow_arch: float
    brow_gap: float  # from eye centre up to the brow
    brow_color: Color
    face_width: float  # half width at the cheekbones
    jaw_power: float  # superellipse exponent of the lower face: <2 pointed, >2.6 square
    chin_y: float
    skull_top: float
    nose_width: float  # half width across the nostril wings
    nose_y: float  # nose tip
    mouth_width: float  # half width, neutral
    mouth_y: float
    upper_lip: float
    lower_lip: float
    lip_color: Color
    beard: str  # none, stubble, mustache, goatee, full
    goatee_mustache: bool
    sideburns: bool
    double_chin: bool
    bags: bool
    wrinkles: bool
    ear_size: float


@dataclass(frozen=True)
class Look:
    """What changes from one image of a person to the next."""

    smiling: bool
    mouth_open: bool
    glasses: str | None  # clear, sun
    glasses_color: Color
    glasses_round: bool
    hat: str | None  # beanie, cap, brim
    hat_color: Color
    lipstick: Color | None
    eye_shadow: Color | None  # heavy make-up
    rosy_cheeks: bool
    earrings: str | None  # stud, hoop, drop
    earring_color: Color
    necklace: bool
    necktie: bool
    necktie_color: Color
    clothing_color: Color
    background: str  # solid, gradient, radial, blobs, panels
    background_colors: tuple[Color, Color]
    light_angle: float  # direction the light comes from, radians in image coordinates
    light_strength: float
    brightness: float
    warmth: float
    yaw: float  # -1..1: features shift sideways as the head turns
    roll: float  # radians
    scale: float
    shift: tuple[float, float]
    gaze: tuple[float, float]
    blur: float  # Gaussian radius in final pixels; 0 for a sharp image
    noise: float


def _rgb(
    color: tuple[float, ...], factor: float = 1.0, alpha: float | None = None
) -> tuple[int, ...]:
    rgb = tuple(min(255, max(0, round(c * factor))) for c in color)
    return rgb if alpha is None else (*rgb, min(255, max(0, round(alpha))))


def _mix(a: Color, b: Color, t: float) -> Color:
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t)


def _curve(x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
    return np.stack(np.broadcast_arrays(x, y), 1)


def _band(x: np.ndarray, top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """The polygon between two curves over the same x: along the top, back along the bottom."""
    return np.concatenate([_curve(x, top), _curve(x, bottom)[::-1]])


def _at(x: float, y: float, *offsets: float) -> np.ndarray:
    """Points given as flat (dx, dy) pairs around an anchor."""
    return np.array(offsets, dtype=np.float64).reshape(-1, 2) + (x, y)


def _scaled(points: np.ndarray, center: Point, factor: float) -> np.ndarray:
    return center + (points - np.asarray(center)) * factor


class _Painter:
    """ImageDraw in upright-frame coordinates, alpha-blending fills, onto a canvas or patch."""

    def __init__(self, image: Image.Image, origin: tuple[int, int] = (0, 0)) -> None:
        self.image = image
        self.draw = ImageDraw.Draw(image, "RGBA" if image.mode == "RGB" else None)
        self.origin = np.array(origin, dtype=np.float64)

    def xy(self, points: np.ndarray) -> list[float]:
        return ((np.asarray(points, np.float64) + PAD) * SCALE - self.origin).ravel().tolist()

    def polygon(self, points: np.ndarray, fill: Fill) -> None:
        self.draw.polygon(self.xy(points), fill=fill)

    def line(self, points: np.ndarray, fill: Fill, width: float) -> None:
        width_px = max(1, round(width * SCALE))
        self.draw.line(self.xy(points), fill=fill, width=width_px, joint="curve")

    def box(self, cx: float, cy: float, rx: float, ry: float) -> list[float]:
        return self.xy(np.array([[cx - rx, cy - ry], [cx + rx, cy + ry]]))

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, **style: object) -> None:
        if "width" in style:
            style["width"] = round(style["width"] * SCALE)  # type: ignore[operator]
        self.draw.ellipse(self.box(cx, cy, rx, ry), **style)  # type: ignore[arg-type]

    def soft_ellipse(
        self,
        cx: float,
        cy: float,
        rx: float,
        ry: float,
        color: tuple[float, ...],
        alpha: float,
        steps: int = 4,
    ) -> None:
        """A blob whose opacity fades towards its rim: ``steps`` stacked, shrinking ellipses."""
        for k in range(steps):
            f = 1.0 - k / steps
            self.ellipse(cx, cy, rx * f, ry * f, fill=_rgb(color, alpha=alpha / steps))


class _Geometry:
    """Where everything goes for one image, in the upright frame (yaw already applied)."""

    def __init__(self, ident: Identity, look: Look) -> None:
        yaw = look.yaw
        self.cx = MID_X + 1.5 * yaw  # the outline moves less than the features: a turn
        feature_x = MID_X + 3.5 * yaw
        self.eye_y = EYE_Y + ident.eye_offset
        spacing = ident.eye_spacing
        self.eyes = ((feature_x - spacing, self.eye_y), (feature_x + spacing, self.eye_y))
        self.nose = (MID_X + 5.5 * yaw, ident.nose_y)
        self.mouth_x = MID_X + 4.5 * yaw
        self.mouth_width = ident.mouth_width * (1.17 if look.smiling else 1.0)
        self.corner_lift = 3.4 if look.smiling else 0.4
        self.mouth_gap = (3.6 if look.smiling else 2.6) if look.mouth_open else 0.0
        self.mouth_y = ident.mouth_y + 0.25 * self.corner_lift
        # The side the head turns towards is foreshortened.
        self.width_left = ident.face_width * (1 + 0.05 * yaw)
        self.width_right = ident.face_width * (1 - 0.05 * yaw)
        self.mid_y = self.eye_y + 3
        self.chin_y = ident.chin_y
        self.top_y = ident.skull_top
        self.light = (math.cos(look.light_angle), math.sin(look.light_angle))
        self.outline = self._outline(ident.jaw_power)

    def half_width(self, side: float) -> float:
        return self.width_left if side < 0 else self.width_right

    def widths(self, cos: np.ndarray) -> np.ndarray:
        return np.where(cos < 0, self.width_left, self.width_right)

    def _outline(self, power: float) -> np.ndarray:
        # Upper half: an ellipse over the forehead; lower half: a superellipse whose
        # exponent sets the jaw (pointed below 2, square above 2.6).
        t = np.linspace(math.pi, 2 * math.pi, 28)
        upper = _curve(self.cx + self.widths(np.cos(t)) * np.cos(t),
                       self.mid_y + (self.mid_y - self.top_y) * np.sin(t))  # fmt: skip
        t = np.linspace(0, math.pi, 34)[1:-1]
        c, s = np.cos(t), np.sin(t)
        c, s = np.sign(c) * np.abs(c) ** (2 / power), np.abs(s) ** (2 / power)
        lower = _curve(self.cx + self.widths(c) * c, self.mid_y + (self.chin_y - self.mid_y) * s)
        return np.concatenate([upper, lower])

    def landmarks(self) -> np.ndarray:
        """CelebA's five points: left eye, right eye, nose tip, left and right mouth corner."""
        corner_y = self.mouth_y - self.corner_lift
        left, right = self.mouth_x - self.mouth_width, self.mouth_x + self.mouth_width
        return np.array([*self.eyes, self.nose, (left, corner_y), (right, corner_y)])


def _background(look: Look, rng: np.random.Generator) -> Image.Image:
    # Built at 1/8 of the canvas and enlarged: every background comes out softly out of
    # focus, as behind a portrait, at almost no cost.
    w, h = CANVAS_SIZE[0] // 8, CANVAS_SIZE[1] // 8
    yy, xx = np.mgrid[0 : 1 : h * 1j, 0 : 1 : w * 1j]
    a, b = (np.array(c, dtype=np.float64) for c in look.background_colors)
    if look.background == "solid":
        t = 0.15 * yy
    elif look.background == "gradient":
        angle = rng.uniform(0, 2 * math.pi)
        t = xx * math.cos(angle) + yy * math.sin(angle)
        t = (t - t.min()) / (np.ptp(t) + 1e-9)
    elif look.background == "radial":
        light_x, light_y = rng.uniform(0.3, 0.7), rng.uniform(0.2, 0.5)
        t = np.clip(1.6 * np.hypot(xx - light_x, 1.2 * (yy - light_y)), 0, 1)
    elif look.background == "panels":  # walls, doors, curtains
        t = (np.searchsorted(np.sort(rng.uniform(0, 1, 3)), xx) % 2) * rng.uniform(0.6, 1.0)
    else:  # blobs: a few out-of-focus lights and shapes
        t = np.zeros_like(xx)
        for _ in range(rng.integers(3, 7)):
            cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.08, 0.3)
            t += rng.uniform(0.4, 1.0) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
        t = np.clip(t, 0, 1)
    field = (a + (b - a) * t[..., None]) * (1 + rng.normal(0, 0.03, (h, w, 1)))
    small = Image.fromarray(np.clip(field, 0, 255).astype(np.uint8))
    return small.resize(CANVAS_SIZE, Image.Resampling.BILINEAR)


class _Hair:
    """The hair's texture and its two masks: behind the head, and in front of the skull."""

    def __init__(self, ident: Identity, g: _Geometry, rng: np.random.Generator) -> None:
        self.ident, self.g = ident, g
        self.covers_ears = ident.hair_style in LONG_STYLES
        self.bottom = g.chin_y + ident.hair_length if self.covers_ears else g.mid_y
        self.texture = self._texture(rng)
        self.back = self._back_mask()
        self.hairline = self._hairline()
        self.cap = self._cap_mask(self.hairline) if self.hairline is not None else None

    def _texture(self, rng: np.random.Generator) -> Image.Image:
        ident, g = self.ident, self.g
        base = ident.hair_color
        image = Image.new("RGB", CANVAS_SIZE, _rgb(base))
        p = _Painter(image)
        crown = np.array([g.cx + 10 * ident.parting, g.top_y + 6])
        dark, light = _rgb(base, 0.55, 120), _rgb(_mix(base, (255, 240, 220), 0.2), 1.05, 60)
        wave = 0.6 if ident.hair_texture == "straight" else 3.0
        for k in range(70):
            # Strands leave the parting, sweep over the skull and, if long, fall down.
            angle = rng.uniform(-0.1, math.pi + 0.1)
            reach = g.half_width(-math.cos(angle)) + ident.hair_volume + 6
            dx, dy = -math.cos(angle) * reach, (1 - math.sin(angle)) * 40 + rng.uniform(-4, 8)
            end = crown + (dx, dy)
            points = [crown, crown + (0.6 * dx, -2), end]
            if self.covers_ears:
                ys = np.linspace(end[1], self.bottom + 10, 8)
                points += list(_curve(end[0] + wave * np.sin(ys / 7 + k) + rng.uniform(-2, 2), ys))
            p.line(np.array(points), fill=dark if k % 2 else light, width=0.5)
        if ident.hair_texture == "curly":
            for _ in range(140):
                x = g.cx + rng.uniform(-1.4, 1.4) * ident.face_width
                y, r = rng.uniform(g.top_y - ident.hair_volume, self.bottom), rng.uniform(2, 3.5)
                color = _rgb(base, 0.6, 90) if rng.random() < 0.6 else light
                start, span = rng.uniform(0, 360), rng.uniform(180, 300)
                p.draw.arc(p.box(x, y, r, r), start, start + span, fill=color, width=2)
        # Sheen on the side of the head that faces the light.
        sheen = _mix(base, (255, 240, 220), 0.35)
        p.soft_ellipse(g.cx + 14 * g.light[0], g.top_y + 10, 30, 12, sheen, 50, 6)
        return image

    def _back_mask(self) -> Image.Image | None:
        ident, g = self.ident, self.g
        if ident.hair_style in ("crew", "short", "receding"):
            return None
        mask = Image.new("L", CANVAS_SIZE, 0)
        p = _Painter(mask)
        if ident.hair_style == "bald":  # a thin rim of hair above and behind the ears
            for side in (-1, 1):
                p.ellipse(g.cx + side * (g.half_width(side) + 0.5), g.eye_y + 2, 2.5, 11, fill=255)
            return mask
        vol = ident.hair_volume
        spread = vol + 6 if ident.hair_style == "curly" else 6 + 0.4 * ident.hair_length
        # Over the skull like the cap, then down both sides, spreading towards the tips.
        t = np.linspace(math.pi, 2 * math.pi, 30)
        c = np.cos(t)
        top = _curve(
            g.cx + (g.widths(c) + vol) * c, g.mid_y + (g.mid_y - g.top_y + 1.4 * vol) * np.sin(t)
        )
        t = np.linspace(0, 1, 14)
        y = g.mid_y + (self.bottom - g.mid_y) * t
        left = _curve(g.cx - g.width_left - vol - spread * t**1.5, y)
        right = _curve(g.cx + g.width_right + vol + spread * t**1.5, y)
        tips_x = np.linspace(right[-1, 0], left[-1, 0], 9)
        tips = _curve(tips_x, self.bottom + 3 * np.cos(np.arange(9) * 1.7))
        shape = np.concatenate([top, right, tips, left[::-1]])
        if ident.hair_texture != "straight":
            curly = ident.hair_texture == "curly"
            shape = _wobble(shape, 4.0 if curly else 2.5, 16, cloud=curly)
        p.polygon(shape, fill=255)
        return mask.filter(ImageFilter.GaussianBlur(1.2))

    def _hairline(self) -> np.ndarray | None:
        ident, g = self.ident, self.g
        if ident.hair_style == "bald":
            return None
        u = np.linspace(-1.35, 1.35, 41)
        au = np.abs(u)
        side = 34 * (np.clip(au - 0.72, 0, None) / 0.28) ** 1.2  # down the temples
        if ident.bangs:  # a fringe down to the brows, its strands' tips zigzagging
            y = g.eye_y - ident.brow_gap - 3 + 3 * u**2 + 1.3 * (np.arange(41) % 2) + 0.5 * side
        elif ident.hair_style == "receding":  # high, and higher still at the temples
            y = g.top_y + 12 + 6 * u**2 - 10 * np.exp(-(((au - 0.5) / 0.16) ** 2)) + side
        else:
            y = g.top_y + 19 + 7 * u**2 + 3 * ident.parting * u + side
        return _curve(g.cx + u * g.half_width(1), np.minimum(y, g.mid_y + 14))

    def _cap_mask(self, hairline: np.ndarray) -> Image.Image:
        ident, g = self.ident, self.g
        vol = ident.hair_volume
        t = np.linspace(math.pi, 2 * math.pi, 40)
        c, s = np.cos(t), np.sin(t)
        cap = _curve(g.cx + (g.widths(c) + vol) * c, g.mid_y + (g.mid_y - g.top_y + vol * 1.4) * s)
        cap = cap[cap[:, 1] <= (g.mid_y if self.covers_ears else g.eye_y - 6) + 0.01]
        if not self.covers_ears:  # short hair tapers down the temples to the ears
            ends = _curve(g.cx + np.array([-g.width_left, g.width_right]) * 1.01, g.eye_y + 3)
            cap = np.concatenate([ends[:1], cap, ends[1:]])
        if ident.hair_texture == "curly" and self.covers_ears:
            cap = _wobble(cap, 4.0, 12, cloud=True)
        mask = Image.new("L", CANVAS_SIZE, 0)
        _Painter(mask).polygon(cap, fill=255)
        # Hair only where the face below the hairline does not show.
        face = Image.new("L", CANVAS_SIZE, 0)
        _Painter(face).polygon(g.outline, fill=255)
        _Painter(face).polygon(_above(hairline), fill=0)
        return ImageChops.subtract(mask, face).filter(ImageFilter.GaussianBlur(1.0))


def _wobble(points: np.ndarray, pixels: float, waves: int, cloud: bool) -> np.ndarray:
    """Wavy or curly edges: push a closed outline in and out along its length.

    The outline is first resampled evenly, so the bumps are round whatever its vertices.
    ``cloud`` makes a chain of outward arcs (curls) instead of a smooth wave.
    """
    closed = np.concatenate([points, points[:1]])
    along = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(closed, axis=0).T))])
    s = np.linspace(0, along[-1], 240, endpoint=False)
    even = _curve(np.interp(s, along, closed[:, 0]), np.interp(s, along, closed[:, 1]))
    out = even - even.mean(0)
    out /= np.maximum(np.hypot(out[:, 0], out[:, 1]), 1e-6)[:, None]
    phase = np.sin(s / along[-1] * waves * 2 * math.pi)
    bump = np.abs(phase) if cloud else 0.5 + 0.5 * phase
    return even + out * (pixels * bump)[:, None]


def _above(curve: np.ndarray) -> np.ndarray:
    """The region above a left-to-right curve, up to the canvas top."""
    top = -PAD - 1.0
    return np.concatenate([curve, [[curve[-1, 0], top], [curve[0, 0], top]]])


def _body(p: _Painter, ident: Identity, look: Look, g: _Geometry) -> None:
    skin = ident.skin
    neck_w = ident.face_width * (0.6 if ident.male else 0.5)
    cx, shoulder_y = g.cx, g.chin_y + 20
    for k in range(5):  # shoulders and clothing, darker towards the edges
        f = 1 - 0.06 * k
        shade = _rgb(look.clothing_color, 0.8 + 0.06 * k)
        p.ellipse(cx, shoulder_y + 62, 100 * f, 62 * f, fill=shade)
    p.ellipse(cx, shoulder_y + 2, neck_w + 4, 8, fill=_rgb(skin, 0.8))  # skin down into the collar
    w = neck_w
    p.polygon(_at(cx, shoulder_y, -w, -40, w, -40, w + 3, 4, -w - 3, 4), fill=_rgb(skin, 0.8))
    p.soft_ellipse(cx + 0.4 * w * g.light[0], shoulder_y - 8, w * 0.8, 20, skin, 90, 5)
    if look.necktie:
        for side in (-1, 1):
            collar = _at(cx, shoulder_y, 0, 8, side * (w + 6), -2, side * (w + 8), 10)
            p.polygon(collar, fill=(235, 235, 232))
        bottom = ALIGNED_HEIGHT + PAD - shoulder_y
        tie = look.necktie_color
        p.polygon(_at(cx, shoulder_y, -2.5, 10, 2.5, 10, 7, bottom, -7, bottom), fill=_rgb(tie))
        p.polygon(_at(cx, shoulder_y, -4, 3, 4, 3, 2.5, 10, -2.5, 10), fill=_rgb(tie, 0.8))
    if look.necklace:
        t = np.linspace(0, 1, 15)
        gold = (225, 190, 90)
        chain = _curve(cx - w - 1 + (2 * w + 2) * t, shoulder_y - 6 + 12 * np.sin(math.pi * t))
        p.line(chain, _rgb(gold), 1.2)
        p.ellipse(cx, shoulder_y + 7.5, 2.2, 2.8, fill=_rgb(gold, 1.05))
    p.soft_ellipse(cx, g.chin_y + 1, ident.face_width * 0.7, 11, (0, 0, 0), 120, 5)  # chin's shadow
    if ident.double_chin:
        p.ellipse(cx, g.chin_y + 1.5, ident.face_width * 0.45, 6, fill=_rgb(skin, 0.78))
        t = np.linspace(-1, 1, 9)
        fold = _curve(cx + ident.face_width * 0.42 * t, g.chin_y + 2 + 5 * np.sqrt(1 - t**2))
        p.line(fold, fill=_rgb(skin, 0.5, 90), width=1.2)


def _ears(p: _Painter, ident: Identity, g: _Geometry) -> None:
    rx, ry = 5.5 * ident.ear_size, 12.5 * ident.ear_size
    for side in (-1, 1):
        x = g.cx + side * g.half_width(side)
        p.ellipse(x, g.eye_y + 11, rx, ry, fill=_rgb(ident.skin, 0.8))
        p.ellipse(x + side * 0.5, g.eye_y + 10, rx * 0.55, ry * 0.65, fill=_rgb(ident.skin, 0.62))


def _skin(p: _Painter, ident: Identity, look: Look, g: _Geometry) -> None:
    # Nested outlines shrinking towards a point on the lit side: the rim away from the
    # light stays darker over a wider band, which reads as a rounded, lit head.
    lx, ly = g.light
    center = (g.cx + 0.35 * ident.face_width * lx, g.mid_y - 4 + 10 * ly)
    steps = 14
    dark = 0.78 - 0.25 * look.light_strength
    for k in range(steps):
        shade = dark + (1.04 - dark) * (k / (steps - 1)) ** 0.6
        p.polygon(_scaled(g.outline, center, 1 - 0.8 * k / steps), fill=_rgb(ident.skin, shade))
    if ident.hair_style == "bald":
        p.soft_ellipse(g.cx + 10 * lx, g.top_y + 10, 14, 7, (255, 250, 240), 60, 4)


def _face_marks(p: _Painter, ident: Identity, look: Look, g: _Geometry) -> None:
    """What is painted onto the skin: socket shadows, cheeks, folds, wrinkles, stubble, beards."""
    shadow = _rgb(ident.skin, 0.45)[:3]
    for side, (ex, ey) in zip((-1, 1), g.eyes, strict=True):
        p.soft_ellipse(ex, ey - 2, ident.eye_width * 1.45, ident.eye_open + 5, shadow, 60, 4)
        if look.smiling:  # cheeks lift and catch the light
            p.soft_ellipse(ex, ey + 16, 9, 6, (255, 240, 225), 40, 4)
        if look.rosy_cheeks:
            p.soft_ellipse(ex + side * 2, ey + 16, 10, 7, (235, 80, 95), 110, 5)
    nx, ny = g.nose
    t = np.linspace(0, 1, 9)
    if look.smiling or ident.wrinkles:  # folds from the nose wings past the mouth corners
        for side in (-1, 1):
            x = nx + side * (ident.nose_width * 1.1 + (g.mouth_width - ident.nose_width + 3.5) * t)
            y = ny - 1 + (g.mouth_y - g.corner_lift + 5 - ny) * t - 1.5 * np.sin(math.pi * t)
            p.line(_curve(x, y), fill=_rgb(shadow, alpha=95 if look.smiling else 60), width=1.1)
    if ident.wrinkles:
        for k in range(3):
            y = g.eye_y - ident.brow_gap - 9 - 5 * k - 1.5 * np.sin(math.pi * t)
            p.line(_curve(g.cx - 16 + 32 * t, y), fill=_rgb(shadow, alpha=55), width=0.8)
        for side, (ex, ey) in zip((-1, 1), g.eyes, strict=True):
            corner = ex + side * (ident.eye_width + 1.5)
            for dy in (-2.5, 0.5, 3.5):  # crow's feet
                crease = _at(corner, ey, 0, 0.4 * dy, side * 4, dy)
                p.line(crease, fill=_rgb(shadow, alpha=70), width=0.7)
    _beard(p, ident, g)


def _beard(p: _Painter, ident: Identity, g: _Geometry) -> None:
    hair = _mix(ident.hair_color, (30, 30, 35), 0.3)
    if ident.sideburns:  # strips of hair down the cheek in front of the ears
        for side in (-1, 1):
            w = g.half_width(side)
            strip = _at(0, 0, w - 0.5, -8, w - 0.5, 20, w - 4.5, 19, w - 5.5, -8) * (side, 1)
            p.polygon(strip + (g.cx, g.eye_y), fill=_rgb(ident.hair_color, 0.85, 225))
    nx, ny = g.nose
    mw, my, mx = g.mouth_width, g.mouth_y - g.corner_lift, g.mouth_x
    if ident.beard in ("stubble", "full"):
        lower = g.outline[g.outline[:, 1] > g.eye_y + 8]  # runs right to left
        if ident.beard == "full":  # volume: the beard hangs below the jaw
            lower = lower + np.clip(lower[:, 1:] - g.eye_y - 30, 0, None) * (0, 0.25)
        wl, wr, nw = g.width_left, g.width_right, ident.nose_width
        upper = np.array([[g.cx - 0.9 * wl, g.eye_y + 12], [g.cx - 0.7 * wl, g.eye_y + 24],
                          [mx - mw - 3, my - 6], [nx - nw, ny + 3.5], [nx + nw, ny + 3.5],
                          [mx + mw + 3, my - 6], [g.cx + 0.7 * wr, g.eye_y + 24],
                          [g.cx + 0.9 * wr, g.eye_y + 12]])  # fmt: skip
        region = np.concatenate([lower, upper])
        if ident.beard == "stubble":  # shaved: a faint blue-grey tint, not a patch
            stubble = _mix(ident.hair_color, (40, 42, 52), 0.75)
            for lift in (4.5, 3.0, 1.5, 0.0):  # stacked, so the upper edge fades in
                p.polygon(region - (0, lift), fill=_rgb(stubble, 1.0, 16))
        else:
            p.polygon(region - (0, 2), fill=_rgb(hair, 0.9, 80))
            p.polygon(region, fill=_rgb(hair, 0.9, 235))
            p.polygon(_scaled(region, (g.cx, g.chin_y - 10), 0.85), fill=_rgb(hair, 1.15, 120))
    elif ident.beard == "goatee":  # around the mouth and down the chin
        chin = _at(mx, my, -0.55 * mw, 2, 0.55 * mw, 2, 9, g.chin_y - my - 1, 0, g.chin_y - my + 3,
                   -9, g.chin_y - my - 1)  # fmt: skip
        p.polygon(chin, fill=_rgb(hair, 0.9, 235))


def _mustache(p: _Painter, ident: Identity, g: _Geometry) -> None:
    if ident.beard not in ("mustache", "full", "goatee") or (
        ident.beard == "goatee" and not ident.goatee_mustache
    ):
        return
    nx, ny = g.nose
    mx, mw = g.mouth_x, g.mouth_width
    # Rests on the upper lip's top edge, leaving the lips visible; the ends droop.
    lip = g.mouth_y - 0.35 * g.mouth_gap - 0.75 * ident.upper_lip
    ends = g.mouth_y - g.corner_lift + 1.5
    shape = np.array([[mx - mw - 1.5, ends], [mx - mw * 0.6, ny + 4], [nx, ny + 3],
                      [mx + mw * 0.6, ny + 4], [mx + mw + 1.5, ends], [mx + mw * 0.55, lip],
                      [mx, lip + 0.3], [mx - mw * 0.55, lip]])  # fmt: skip
    p.polygon(shape, fill=_rgb(_mix(ident.hair_color, (30, 30, 35), 0.3), 0.9, 240))


def _eyes(canvas: Image.Image, p: _Painter, ident: Identity, look: Look, g: _Geometry) -> None:
    w = ident.eye_width
    up = ident.eye_open * (0.85 if look.smiling else 1.0)
    down = up * (0.55 if look.smiling else 0.75)  # smiling cheeks push the lower lid up
    lash = (28, 20, 20)
    lined = look.eye_shadow is not None or not ident.male
    t = np.linspace(-1, 1, 15)
    for side, (ex, ey) in zip((-1, 1), g.eyes, strict=True):
        tilt = 0.5 * side * t  # the inner corner sits a little lower than the outer one
        upper = _curve(ex + w * t, ey - up * (1 - t**2) ** 0.55 - tilt)
        lower = _curve(ex + w * t, ey + down * (1 - t**2) ** 0.8 - tilt)
        crease = _curve(ex + 1.05 * w * t, ey - up - 2.4 - 0.3 * tilt + 1.8 * t**2)
        if look.eye_shadow is not None:
            lid = np.concatenate([upper, (crease - (0, 2.5))[::-1]])
            p.polygon(lid, fill=_rgb(look.eye_shadow, alpha=130))
        p.line(crease, fill=_rgb(ident.skin, 0.5, 70), width=0.8)
        _eyeball(canvas, ident, look, np.concatenate([upper, lower[::-1]]), (ex, ey), up)
        p.line(upper, fill=_rgb(lash, alpha=235), width=1.6 if lined else 1.2)
        if lined:  # a small flick of lashes at the outer corner
            outer = upper[-1] if side > 0 else upper[0]
            flick = np.array([outer, outer + (side * 2.2, -1.2)])
            p.line(flick, fill=_rgb(lash, alpha=220), width=1.0)
        p.line(lower, fill=_rgb(ident.skin, 0.5, 80), width=0.7)
        if ident.bags:
            p.line(lower + (0, 2.6), fill=_rgb(ident.skin, 0.55, 80), width=1.4)


def _eyeball(
    canvas: Image.Image, ident: Identity, look: Look, shape: np.ndarray, center: Point, up: float
) -> None:
    """White, iris, pupil and glint, drawn on a small patch clipped to the eye opening."""
    lo = np.floor((shape.min(0) - 1 + PAD) * SCALE).astype(int)
    hi = np.ceil((shape.max(0) + 1 + PAD) * SCALE).astype(int)
    size, origin = (int(hi[0] - lo[0]), int(hi[1] - lo[1])), (int(lo[0]), int(lo[1]))
    patch = Image.new("RGB", size, (218, 211, 204))
    p = _Painter(patch, origin)
    ex, ey = center
    p.soft_ellipse(ex, ey, ident.eye_width * 1.1, up * 1.6, (150, 130, 125), 80, 3)  # corners
    ix, iy = ex + look.gaze[0], ey + look.gaze[1] - 0.3
    r = ident.iris_radius
    p.ellipse(ix, iy, r, r, fill=_rgb(ident.eye_color, 0.6))
    p.ellipse(ix, iy, r * 0.82, r * 0.82, fill=_rgb(ident.eye_color))
    p.ellipse(ix, iy, r * 0.42, r * 0.42, fill=(12, 8, 8))
    lx, ly = math.cos(look.light_angle), math.sin(look.light_angle)
    p.ellipse(ix + 0.4 * r * lx, iy + 0.4 * r * ly, 0.75, 0.75, fill=(250, 250, 250))
    lid = shape[:15]  # the upper lid shades the top of the eyeball
    p.polygon(np.concatenate([lid, lid[::-1] + (0, 1.6)]), fill=(40, 25, 20, 110))
    mask = Image.new("L", size, 0)
    _Painter(mask, origin).polygon(shape, fill=255)
    canvas.paste(patch, origin, mask)


def _brows(p: _Painter, ident: Identity, look: Look, g: _Geometry) -> None:
    t = np.linspace(0, 1, 12)
    w = ident.eye_width
    lift = 1.0 if look.smiling else 0.0
    for side, (ex, ey) in zip((-1, 1), g.eyes, strict=True):
        inner, outer = ex - side * 0.85 * w, ex + side * 1.3 * w
        x = inner + (outer - inner) * t
        middle = ey - ident.brow_gap - lift - ident.brow_arch * np.sin(math.pi * t**0.75) + 1.5 * t
        half = ident.brow_thickness * (1.0 - 0.55 * t) / 2  # tapering towards the temple
        p.polygon(_band(x, middle - half, middle + half), fill=_rgb(ident.brow_color, alpha=215))
        if ident.brow_thickness > 4:  # bushy: stray hairs across the line
            for k in range(0, 12, 2):
                hair = _at(x[k], middle[k], 0, half[k] + 0.8, side * 2, -half[k] - 0.8)
                p.line(hair, fill=_rgb(ident.brow_color, alpha=160), width=0.6)


def _nose(p: _Painter, ident: Identity, g: _Geometry) -> None:
    nx, ny = g.nose
    nw = ident.nose_width
    shadow = _rgb(ident.skin, 0.5)[:3]
    away = -1 if g.light[0] > 0 else 1  # the side of the nose turned from the light
    bridge_x = (g.eyes[0][0] + g.eyes[1][0]) / 2
    for side, alpha in ((away, 45), (-away, 15)):
        top = _at(bridge_x, g.eye_y, side * 3.2, 1, side * 3.6, 10)
        bridge = np.concatenate([top, [[nx + side * 0.75 * nw, ny - 3]]])
        p.line(bridge, fill=_rgb(shadow, alpha=alpha), width=3.0)
    p.soft_ellipse(nx, ny + 2.2, nw * 0.9, 2.6, shadow, 110, 3)
    p.soft_ellipse(nx + 1.2 * g.light[0], ny - 2.2, 2.8, 2.4, (255, 250, 245), 70, 3)
    for side in (-1, 1):
        p.ellipse(nx + side * nw * 0.42, ny + 2.0, 1.7, 1.0, fill=_rgb(ident.skin, 0.3, 230))
        wing = _at(0, 0, 0.45 * nw, -2.5, 0.95 * nw, -0.5, nw, 1.8, 0.6 * nw, 3) * (side, 1)
        wing += (nx, ny)
        p.line(wing, fill=_rgb(shadow, alpha=110), width=0.9)


def _mouth(p: _Painter, ident: Identity, look: Look, g: _Geometry) -> None:
    mx, my = g.mouth_x, g.mouth_y
    mw, lift, gap = g.mouth_width, g.corner_lift, g.mouth_gap
    t = np.linspace(-1, 1, 21)
    x = mx + mw * t
    bulge = 1 - t**2
    meet = my - lift * t**2  # where the lips meet, curling up at a smile
    upper_low = meet - 0.35 * gap * bulge
    lower_high = meet + 0.8 * gap * bulge**0.8
    thin = 0.8 if look.smiling else 1.0  # stretched lips look thinner
    bow = 1 - 0.3 * np.exp(-((t / 0.16) ** 2))  # Cupid's bow dips in the middle
    upper_top = upper_low - ident.upper_lip * thin * bulge**0.5 * bow
    lower_low = lower_high + ident.lower_lip * thin * bulge**0.6
    lip = look.lipstick if look.lipstick is not None else ident.lip_color
    p.soft_ellipse(mx, lower_low.max() + 2, mw * 0.55, 2.2, _rgb(ident.skin, 0.5)[:3], 80, 3)
    if gap > 0:  # dark inside, upper teeth showing
        p.polygon(_band(x, upper_low, lower_high), fill=(55, 18, 22))
        keep = np.abs(t) < 0.8
        teeth_low = np.minimum(upper_low + min(2.4, 0.75 * gap) * bulge**0.3, lower_high)
        p.polygon(_band(x[keep], upper_low[keep], teeth_low[keep]), fill=(232, 226, 214))
    p.polygon(_band(x, upper_top, upper_low), fill=_rgb(lip, 0.82))
    p.polygon(_band(x, lower_high, lower_low), fill=_rgb(lip))
    shine_y = (lower_high + lower_low).max() / 2 + 0.2
    p.soft_ellipse(mx, shine_y, mw * 0.35, ident.lower_lip * 0.25, (255, 255, 255), 60, 2)
    if gap == 0:
        p.line(_curve(x, meet), fill=_rgb(lip, 0.35, 220), width=0.9)
    for side in (-1, 1):  # the corners dimple slightly into the cheek
        p.ellipse(mx + side * mw, my - lift, 0.9, 0.9, fill=_rgb(ident.skin, 0.45, 140))


def _earrings(p: _Painter, ident: Identity, look: Look, g: _Geometry) -> None:
    color, rim = _rgb(look.earring_color), _rgb(look.earring_color, 0.6)
    for side in (-1, 1):
        x = g.cx + side * (g.half_width(side) + 1.5)
        y = g.eye_y + 11 + 12 * ident.ear_size
        if look.earrings == "stud":
            p.ellipse(x, y, 2.0, 2.0, fill=color, outline=rim, width=0.5)
        elif look.earrings == "hoop":
            p.ellipse(x, y + 4, 3.8, 4.2, outline=color, width=1.1)
        else:
            p.line(_at(x, y, 0, 0, 0, 5), fill=color, width=0.8)
            p.ellipse(x, y + 7, 2.2, 3.0, fill=color, outline=rim, width=0.5)


def _hat_band(ident: Identity, look: Look, g: _Geometry) -> float:
    """Where the hat's rim crosses the forehead: a beanie comes down nearly to the brows."""
    return g.eye_y - ident.brow_gap - {"beanie": 9, "cap": 17, "brim": 16}[look.hat or "cap"]


def _hat(p: _Painter, ident: Identity, look: Look, g: _Geometry) -> None:
    assert look.hat is not None, "drawn only for a look with a hat"
    color = look.hat_color
    band_y = _hat_band(ident, look, g)
    reach = max(g.width_left, g.width_right) + ident.hair_volume * 0.6 + 4
    u = np.linspace(-1, 1, 25)
    x = g.cx + reach * u
    bottom = band_y + 6 * u**2  # the rim follows the round head
    if look.hat == "brim":
        p.ellipse(g.cx, band_y + 1, reach + 22, 8, fill=_rgb(color, 0.75))
        p.ellipse(g.cx, band_y - 1, reach + 20, 6, fill=_rgb(color, 0.95))
    # The crown: a dome resting on the head, lit from the light's side.
    # The crown sits on the hair, however thick.
    dome_top = g.top_y - 1.4 * ident.hair_volume - {"beanie": 1, "cap": 0, "brim": 10}[look.hat]
    t = np.linspace(math.pi, 2 * math.pi, 25)
    dome = _curve(g.cx + reach * np.cos(t), band_y + (band_y - dome_top) * np.sin(t))
    crown = np.concatenate([dome, _curve(x, bottom)[::-1]])
    lx = g.light[0]
    p.polygon(crown, fill=_rgb(color, 0.8))
    p.polygon(_scaled(crown, (g.cx + 10 * lx, band_y - 12), 0.8), fill=_rgb(color, 0.92))
    p.polygon(_scaled(crown, (g.cx + 14 * lx, band_y - 18), 0.5), fill=_rgb(color, 1.04))
    if look.hat == "beanie":  # a folded cuff with knit ribs
        p.polygon(_band(x, bottom - 9, bottom), fill=_rgb(color, 0.72))
        for k in np.linspace(-1, 1, 21):
            rib = _at(g.cx + reach * k, band_y, 0, -9, 0, 6 * k**2)
            p.line(rib, fill=_rgb(color, 0.5, 90), width=0.6)
    elif look.hat == "brim":
        p.polygon(_band(x, bottom - 6, bottom), fill=_rgb(_mix(color, (20, 20, 20), 0.6)))
    else:  # cap: a visor sticking out towards the camera, dark underneath
        edge = bottom + 10 - 7 * u**2
        p.polygon(_band(g.cx + 0.85 * reach * u, bottom - 1, edge), fill=_rgb(color, 0.62))
        p.line(_curve(g.cx + 0.85 * reach * u, edge), fill=_rgb(color, 0.4), width=1.2)


def _glasses(p: _Painter, ident: Identity, look: Look, g: _Geometry) -> None:
    frame = _rgb(look.glasses_color, alpha=245)
    half_w, half_h = ident.eye_width + 4.5, 8.0
    sun = look.glasses == "sun"
    lens = (15, 15, 20, 235) if sun else (200, 220, 235, 28)
    width = round(1.5 * SCALE)
    for side, (ex, ey) in zip((-1, 1), g.eyes, strict=True):
        box = p.xy(_at(ex, ey, -half_w, -half_h + 0.5, half_w, half_h + 1.5))
        if look.glasses_round:
            p.draw.ellipse(box, fill=lens, outline=frame, width=width)
        else:
            p.draw.rounded_rectangle(box, radius=6 * SCALE, fill=lens, outline=frame, width=width)
        if sun:
            p.line(_at(ex, ey, -4, -4, -1, -5.5), fill=(255, 255, 255, 90), width=1.2)
        temple = g.cx + side * (g.half_width(side) + 0.5)
        p.line(np.array([[ex + side * half_w, ey - 3.5], [temple, ey - 2]]), fill=frame, width=1.3)
    (left, y), (right, _) = g.eyes
    reach = (right - left) / 2 - half_w + 0.5
    bridge = _at((left + right) / 2, y, -reach, -2.5, 0, -4.2, reach, -2.5)
    p.line(bridge, fill=frame, width=1.3)


_Y, _X = np.mgrid[0:ALIGNED_HEIGHT, 0:ALIGNED_WIDTH].astype(np.float32)


def _pose_matrix(look: Look) -> np.ndarray:
    """3x3 map from upright-frame to image coordinates: roll and scale about the eyes, shift."""
    c, s = math.cos(look.roll) * look.scale, math.sin(look.roll) * look.scale
    pivot = np.array([MID_X, EYE_Y])
    m = np.eye(3)
    m[:2, :2] = [[c, -s], [s, c]]
    m[:2, 2] = pivot + np.asarray(look.shift) - m[:2, :2] @ pivot
    return m


def _finish(canvas: Image.Image, look: Look, rng: np.random.Generator) -> Image.Image:
    # Continuous coordinates: final pixel x spans [x, x + 1) and the point x of the upright
    # frame is drawn at canvas pixel (x + PAD) * SCALE, whose centre is +0.5 further.
    out_to_image = np.array([[0.5, 0, -0.5], [0, 0.5, -0.5], [0, 0, 1]])  # supersampled -> final
    offset = PAD * SCALE + 0.5
    frame_to_canvas = np.array([[SCALE, 0, offset], [0, SCALE, offset], [0, 0, 1]])
    m = frame_to_canvas @ np.linalg.inv(_pose_matrix(look)) @ out_to_image
    size = (ALIGNED_WIDTH * SCALE, ALIGNED_HEIGHT * SCALE)
    warped = canvas.transform(
        size, Image.Transform.AFFINE, tuple(m[:2].ravel()), resample=Image.Resampling.BILINEAR
    )
    pixels = np.asarray(warped.reduce(SCALE), dtype=np.float32)
    # One light gradient over the whole picture, plus colour temperature and sensor noise.
    lx, ly = math.cos(look.light_angle), math.sin(look.light_angle)
    along_light = ((_X - MID_X) * lx + (_Y - EYE_Y) * ly) / 110
    gain = look.brightness * (1 + look.light_strength * along_light)
    tint = np.array([1 + look.warmth, 1.0, 1 - look.warmth], dtype=np.float32)
    pixels = pixels * gain[..., None] * tint
    pixels += rng.standard_normal(pixels.shape, dtype=np.float32) * look.noise
    image = Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8))
    if look.blur > 0:
        image = image.filter(ImageFilter.GaussianBlur(look.blur))
    return image


def draw_face(
    ident: Identity, look: Look, rng: np.random.Generator
) -> tuple[Image.Image, np.ndarray]:
    """Draw one 178x218 face; return it with its five landmarks as int [10] (x, y pairs)."""
    g = _Geometry(ident, look)
    canvas = _background(look, rng)
    p = _Painter(canvas)
    hair = _Hair(ident, g, rng)
    if hair.back is not None:
        canvas.paste(hair.texture, (0, 0), hair.back)
    _body(p, ident, look, g)
    if not hair.covers_ears:
        _ears(p, ident, g)
    _skin(p, ident, look, g)
    _face_marks(p, ident, look, g)
    _nose(p, ident, g)
    _mouth(p, ident, look, g)
    _mustache(p, ident, g)
    _eyes(canvas, p, ident, look, g)
    _brows(p, ident, look, g)
    if hair.cap is not None and hair.hairline is not None:  # a cap always has a hairline
        # The hair's own shadow on the forehead, then the hair over it.
        line = hair.hairline[np.abs(hair.hairline[:, 0] - g.cx) < 0.95 * ident.face_width]
        p.polygon(np.concatenate([line + (0, 2.5), line[::-1] - (0, 4)]), fill=(0, 0, 0, 45))
        canvas.paste(hair.texture, (0, 0), hair.cap)
    if look.earrings is not None:
        _earrings(p, ident, look, g)
    if look.hat is not None:  # the hat's shadow on the brow
        depth = 14 if look.hat in ("cap", "brim") else 6
        band_y = _hat_band(ident, look, g)
        p.soft_ellipse(g.cx, band_y + 4, g.width_right - 2, depth, (0, 0, 0), 110, 5)
    if look.glasses is not None:
        _glasses(p, ident, look, g)
    if look.hat is not None:
        _hat(p, ident, look, g)
    image = _finish(canvas, look, rng)
    pose = _pose_matrix(look)
    landmarks = g.landmarks() @ pose[:2, :2].T + pose[:2, 2]
    return image, np.rint(landmarks).astype(np.int64).ravel()
