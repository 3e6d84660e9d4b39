"""Frames sampled from a local video file with PyAV, resized and JPEG-encoded for vision models."""

from __future__ import annotations

import io
import math
from pathlib import Path

import av
from PIL import Image

from ..errors import DataError


def _jpeg(image: Image.Image, size: int) -> bytes:
    image = image.convert("RGB")
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def sample_frames(path: str | Path, count: int, *, max_fps: float | None = None, size: int = 512) -> list[bytes]:
    """Up to ``count`` frames spread evenly over the video, at most ``max_fps`` per second, as JPEG.

    Frames are taken at the middles of equal time slices, each found by seeking to the
    nearest keyframe before it and decoding forward, so long videos are not decoded whole.
    """
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as err:
        raise DataError(f"{path}: cannot open video: {err}") from err
    with container:
        if not container.streams.video:
            raise DataError(f"{path}: no video stream")
        stream = container.streams.video[0]
        duration = float(stream.duration * stream.time_base) if stream.duration else (container.duration or 0) / av.time_base
        if duration <= 0:
            raise DataError(f"{path}: unknown duration; cannot place frames")
        if max_fps:
            count = min(count, max(1, math.floor(duration * max_fps)))
        start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        frames: list[bytes] = []
        for index in range(count):
            target = start + (index + 0.5) * duration / count
            container.seek(int(target / stream.time_base), stream=stream, backward=True)
            chosen = None
            for frame in container.decode(stream):
                chosen = frame
                if frame.time is not None and frame.time >= target:
                    break
            if chosen is not None:
                frames.append(_jpeg(chosen.to_image(), size))
        return frames
