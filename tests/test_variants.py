"""Image variants without a server: what a query asks, the variant it leads to, and what
libvips makes of real images (orientation, metadata, animation, pixel limits)."""

from __future__ import annotations

from pathlib import Path

import pytest
import pyvips

from openpan.services import variants
from openpan.services.variants import Ask, Source, VariantError, VariantRefused


def _ask(**query: str) -> Ask:
    ask = variants.parse(query)
    assert ask is not None
    return ask


def test_no_variant_parameter_means_the_original() -> None:
    assert variants.parse({}) is None
    assert variants.parse({"auth_key": "1-2-3", "download": "1"}) is None


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"w": "0"}, "w"),
        ({"w": "-5"}, "w"),
        ({"w": "12.5"}, "w"),
        ({"w": "１２"}, "w"),  # full-width digits
        ({"h": "9" * 30}, "h"),
        ({"h": ""}, "h"),
        ({"fit": "stretch"}, "fit"),
        ({"format": "bmp"}, "format"),
        ({"format": "<script>"}, "format"),
        ({"q": "0"}, "q"),
        ({"q": "101"}, "q"),
        ({"w": "100", "q": "x"}, "q"),
    ],
)
def test_bad_values_are_refused_naming_the_parameter(query: dict[str, str], named: str) -> None:
    with pytest.raises(VariantError) as refused:
        variants.parse(query)
    message = str(refused.value)
    assert message.startswith(f"{named} must be") and "\n" not in message


def test_sizes_go_up_the_ladder_and_never_beyond_the_original() -> None:
    source = Source(width=3000, height=2000, format="jpeg")
    assert variants.plan(_ask(w="100"), source).width == 128
    assert variants.plan(_ask(w="128"), source).width == 128
    assert variants.plan(_ask(w="2500"), source).width == 3000  # 4096 is past the original
    assert variants.plan(_ask(w="99999"), source).width == 3000
    assert variants.plan(_ask(h="1"), source).height == 64
    assert variants.plan(_ask(w="300"), source, ladder=(100, 1000)).width == 1000
    # Every width asked for lands on one of a few variants.
    names = {variants.plan(_ask(w=str(w)), source).name for w in range(1, 5000, 7)}
    assert len(names) == 7


def test_the_format_follows_the_original_the_query_or_accept() -> None:
    jpeg, tiff = Source(800, 600, "jpeg"), Source(800, 600, "tiff")
    assert variants.plan(_ask(w="64"), jpeg).format == "jpeg"
    assert variants.plan(_ask(w="64"), tiff).format == "webp"  # browsers do not show TIFF
    assert variants.plan(_ask(format="png"), jpeg).format == "png"
    chrome = "image/avif,image/webp,image/apng,*/*;q=0.8"
    assert variants.plan(_ask(format="auto"), jpeg, accept=chrome).format == "avif"
    assert variants.plan(_ask(format="auto"), jpeg, accept="image/webp,*/*").format == "webp"
    assert variants.plan(_ask(format="auto"), jpeg, accept="*/*").format == "jpeg"
    assert variants.plan(_ask(format="auto"), tiff, accept="").format == "jpeg"


def test_cover_and_fill_need_a_box_and_the_name_tells_variants_apart() -> None:
    source = Source(1000, 1000, "png")
    assert variants.plan(_ask(w="100", fit="cover"), source).fit == "contain"
    covered = variants.plan(_ask(w="100", h="100", fit="cover"), source)
    filled = variants.plan(_ask(w="100", h="100", fit="fill"), source)
    assert covered.fit == "cover" and covered.name != filled.name
    assert variants.plan(_ask(w="100", q="50"), source).name != covered.name


def _photo(path: Path, width: int, height: int, orientation: int = 1) -> Path:
    image = pyvips.Image.xyz(width, height)[0].cast("uchar").bandjoin([128, 64]).copy()
    image.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    image.set_type(pyvips.GValue.gstr_type, "exif-ifd0-Artist", "someone (someone, ASCII, 8)")
    image.jpegsave(str(path), Q=90)
    return path


def test_a_variant_is_upright_small_and_carries_no_metadata(tmp_path: Path) -> None:
    # Orientation 6: the camera was turned; the picture is shown rotated by 90 degrees.
    path = _photo(tmp_path / "turned.jpg", 1200, 800, orientation=6)
    original = pyvips.Image.new_from_file(str(path))
    assert original.get_typeof("exif-data") and original.get("orientation") == 6
    source = variants.read_source(str(path))
    assert (source.width, source.height, source.format) == (800, 1200, "jpeg")  # as shown
    variant = variants.plan(_ask(h="256", format="webp"), source)
    made = pyvips.Image.new_from_buffer(variants.render(str(path), variant), "")
    assert (made.width, made.height) == (171, 256)  # upright: taller than wide
    assert made.get("vips-loader") == "webpload_buffer"
    for field in ("exif-data", "xmp-data", "orientation", "icc-profile-data"):
        assert not made.get_typeof(field), field


def test_cover_crops_to_the_box_and_fill_stretches(tmp_path: Path) -> None:
    path = _photo(tmp_path / "wide.jpg", 1000, 500)
    source = variants.read_source(str(path))
    for fit in ("cover", "fill"):
        variant = variants.plan(_ask(w="128", h="128", fit=fit, format="png"), source)
        made = pyvips.Image.new_from_buffer(variants.render(str(path), variant), "")
        assert (made.width, made.height) == (128, 128), fit


def test_an_animated_gif_stays_animated(tmp_path: Path) -> None:
    frames = [pyvips.Image.black(200, 100).new_from_image([i * 60, 0, 0]) for i in range(4)]
    strip = pyvips.Image.arrayjoin(frames, across=1).copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", 100)
    path = tmp_path / "moving.gif"
    strip.gifsave(str(path))
    source = variants.read_source(str(path))
    assert (source.width, source.height, source.pages, source.format) == (200, 100, 4, "gif")
    for format in ("gif", "webp"):
        variant = variants.plan(_ask(w="64", format=format), source)
        assert variant.animated
        made = pyvips.Image.new_from_buffer(variants.render(str(path), variant), "", n=-1)
        assert made.get("n-pages") == 4 and made.width == 64, format
    flat = variants.plan(_ask(w="64", format="png"), source)
    assert not flat.animated


def test_too_many_pixels_or_no_image_get_no_variant(tmp_path: Path) -> None:
    path = _photo(tmp_path / "big.jpg", 2000, 1500)
    source = variants.read_source(str(path))
    with pytest.raises(VariantRefused, match="too many pixels"):
        variants.check_pixels(source, max_pixels=2_999_999)
    variants.check_pixels(source, max_pixels=3_000_000)
    assert source.width == 2000
    fake = tmp_path / "fake.jpg"
    fake.write_bytes(b"<html>not an image</html>")
    with pytest.raises(VariantRefused, match="not a raster image"):
        variants.read_source(str(fake))
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(path.read_bytes()[:2000])  # a header and a little of the picture
    variant = variants.plan(_ask(w="64"), variants.read_source(str(cut)))
    with pytest.raises(VariantRefused):
        variants.render(str(cut), variant)
