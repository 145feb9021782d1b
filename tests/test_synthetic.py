import json

from PIL import Image

from docvlm.data.synthetic import LineStyle, find_fonts, random_text, write_synthetic_lines


def test_splits_manifests_and_images(tmp_path):
    out = write_synthetic_lines(tmp_path, {"train": 5, "validation": 2, "test": 3}, LineStyle(width=112), seed=4)
    for split, count in {"train": 5, "validation": 2, "test": 3}.items():
        rows = [json.loads(line) for line in (out / f"{split}.jsonl").read_text().splitlines()]
        assert len(rows) == count
        for row in rows:
            image = Image.open(out / row["image"])
            assert image.size == (112, 28)
            assert 3 <= len(row["text"]) <= 6 and row["text"].isdigit()


def test_seeded_and_split_independent(tmp_path):
    a = write_synthetic_lines(tmp_path / "a", {"train": 3, "test": 2}, seed=7)
    b = write_synthetic_lines(tmp_path / "b", {"train": 30, "test": 2}, seed=7)
    assert (a / "test.jsonl").read_text() == (b / "test.jsonl").read_text()
    assert (a / "images/test/test-000001.png").read_bytes() == (b / "images/test/test-000001.png").read_bytes()
    c = write_synthetic_lines(tmp_path / "c", {"train": 3, "test": 2}, seed=8)
    assert (a / "test.jsonl").read_text() != (c / "test.jsonl").read_text()


def test_alphabet_and_length_are_configurable():
    import random

    style = LineStyle(alphabet="ab", min_length=10, max_length=10)
    text = random_text(random.Random(0), style)
    assert len(text) == 10 and set(text) <= {"a", "b"}


def test_renders_without_system_fonts(tmp_path, monkeypatch):
    import docvlm.data.synthetic as synthetic

    monkeypatch.setattr(synthetic, "FONT_DIRS", (str(tmp_path / "none"),))
    assert synthetic.find_fonts() == []
    out = write_synthetic_lines(tmp_path / "d", {"test": 2}, seed=0)
    assert len((out / "test.jsonl").read_text().splitlines()) == 2


def test_several_fonts_are_found():
    fonts = find_fonts()
    assert len(fonts) >= 2  # fonts-dejavu is on the machines this project runs on


def test_settings_are_recorded_and_checked(tmp_path):
    from docvlm.data.synthetic import is_rendered

    style = LineStyle(width=112, letter_spacing=(2, 4))
    out = write_synthetic_lines(tmp_path, {"test": 2}, style, seed=5)
    assert json.loads((out / "synthetic.json").read_text())["style"]["letter_spacing"] == [2, 4]
    assert is_rendered(out, {"test": 2}, style, seed=5)
    assert not is_rendered(out, {"test": 3}, style, seed=5)
    assert not is_rendered(out, {"test": 2}, LineStyle(width=112), seed=5)
    assert not is_rendered(out, {"test": 2}, style, seed=6)


def test_letter_spacing_widens_the_line():
    import random

    from docvlm.data.synthetic import render_line

    def ink_width(spacing):
        image = render_line("123456", random.Random(0), LineStyle(noise=0, blur=0, slant=0, jitter=0,
                                                                  letter_spacing=spacing), find_fonts()[:1])
        columns = [x for x in range(image.width) if any(image.getpixel((x, y))[0] < 128 for y in range(image.height))]
        return columns[-1] - columns[0]

    assert ink_width((12, 12)) - ink_width((0, 0)) == 5 * 12


def test_cells_put_each_character_in_its_own_cell():
    import random

    from docvlm.data.synthetic import render_line

    style = LineStyle(noise=0, blur=0, slant=0, jitter=0, margin=0, cell_width=28)
    image = render_line("1111", random.Random(0), style, find_fonts()[:1])
    ink = [x for x in range(image.width) if any(image.getpixel((x, y))[0] < 128 for y in range(image.height))]
    # Four identical glyphs centred in 28-pixel cells: each cell holds one, with the same offset.
    cells = [[x - 28 * i for x in ink if 28 * i <= x < 28 * (i + 1)] for i in range(5)]
    assert cells[0] and cells[0] == cells[1] == cells[2] == cells[3] and cells[4] == []
    assert all(0 < x < 27 for x in cells[0])
