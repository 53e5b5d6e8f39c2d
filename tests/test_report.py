"""Plots and self-contained HTML reports, drawn from real explanations.

Every explanation here is the real thing: the default model (dlib's ResNet in ONNX Runtime) on
real LFW and FRLL photos, through ``freqxfr.Explainer``. The scenario plots get real numbers too:
a small cross-resolution sweep and a few real FRLL morphs.
"""

from __future__ import annotations

import base64
import copy
import csv
import dataclasses
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from freqxfr import BandSchedule
from freqxfr.common.errors import FreqxfrError, InputError, OutputError
from freqxfr.explanations import explainer as explanations
from freqxfr.explanations.faithfulness import pair_faithfulness
from freqxfr.explanations.pairs import Pair, read_pairs
from freqxfr.reports import crossres as crossres_report
from freqxfr.reports import morph as morph_report
from freqxfr.reports import plots, render_run
from freqxfr.reports.dataset import write_dataset_report
from freqxfr.reports.html import Section, html_table, number, write_report
from freqxfr.reports.pair import write_pair_report
from freqxfr.runs.dataset import run_dataset
from freqxfr.stats import profiles

FACTORS = (1, 2, 4, 8)
# (vertical, horizontal) frequencies well inside one band each of BandSchedule.polar(2, 4) at
# 112×112 (rings split at relative radius 0.5, i.e. 39.6 cycles; sectors every 45°), one per band.
POLAR_POINTS = [(4, 20), (25, 10), (20, -10), (-4, 20), (10, 50), (45, 25), (-45, 25), (30, -50)]
EVIL = "<script>alert(1)</script>$x_1$.jpg"  # HTML and matplotlib mathtext in one file name


# --- real explanations ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def explainer(dlib_model) -> explanations.Explainer:
    return explanations.Explainer(dlib_model, BandSchedule.rings(16), max_batch=64)  # arena size


@pytest.fixture(scope="module")
def lfw_pairs(data_dir: Path) -> list[Pair]:
    return read_pairs(data_dir / "lfw_aligned112" / "pairs_generated.csv", data_dir)


@pytest.fixture(scope="module")
def pair(explainer, lfw_pairs) -> dict:
    """One real genuine LFW pair: explanation dict, faces, masked views and faithfulness curves."""
    first = next(p for p in lfw_pairs if p.same)
    faces = np.stack([explainer.aligned_crop(first.path_a), explainer.aligned_crop(first.path_b)])
    result = explainer.explain(faces[0], faces[1], aligned=True, same=True)
    explanation = result.to_dict()
    explanation["a"]["source"] = str(first.path_a)
    explanation["b"]["source"] = str(first.path_b)
    # The pair report draws the curves and their areas, not the calibrated null: the fewest null
    # orders (as many as the seeds) instead of 20 random and 20 sanity orders, 3/4 of the work.
    curves = pair_faithfulness(
        explainer, faces[0], faces[1], seeds=3, aligned=True, explanation=result, null_orders=3
    ).to_dict()
    return {
        "explanation": explanation,
        "faces": faces,
        "views": explainer.masked_views(faces),
        "faithfulness": curves,
    }


@pytest.fixture(scope="module")
def pair_report(pair, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pair")
    return write_pair_report(
        out, pair["explanation"], pair["faces"], pair["views"], pair["faithfulness"]
    )


@pytest.fixture(scope="module")
def frll_run(explainer, data_dir, tmp_path_factory) -> dict:
    """A real dataset run: 4 genuine and 4 impostor FRLL pairs with their gender and ethnicity."""
    with open(data_dir / "frll" / "index.csv", newline="") as handle:
        index = {row["path"]: row for row in csv.DictReader(handle)}
    listed = read_pairs(data_dir / "frll" / "pairs.csv", data_dir)
    chosen = [p for p in listed if p.same][:4] + [p for p in listed if not p.same][:4]
    pairs = []
    for p in chosen:
        row = index[p.path_a.relative_to(data_dir).as_posix()]
        pairs.append(
            dataclasses.replace(p, groups={"gender": row["gender"], "ethnicity": row["ethnicity"]})
        )
    out = tmp_path_factory.mktemp("frll_run")
    summary = run_dataset(pairs, out, explainer, progress=False, report=False)
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    scores = [(r["same"], r["score_ref"]) for r in records]
    return {"summary": summary, "scores": scores}


# --- checks on pictures and pages ------------------------------------------------------------


def assert_picture(source: Path | bytes, min_size: tuple[int, int] = (400, 200)) -> np.ndarray:
    """A valid PNG of at least ``min_size`` with real content (not blank, not one flat colour)."""
    raw = source if isinstance(source, bytes) else source.read_bytes()
    assert raw.startswith(b"\x89PNG\r\n\x1a\n")
    Image.open(io.BytesIO(raw)).verify()
    image = Image.open(io.BytesIO(raw))
    assert image.width >= min_size[0] and image.height >= min_size[1], image.size
    pixels = np.asarray(image.convert("RGB"))
    assert pixels.std() > 20, "the picture is (nearly) blank"
    packed = (pixels[..., 0].astype(np.uint32) << 16) | (pixels[..., 1].astype(np.uint32) << 8)
    assert len(np.unique(packed | pixels[..., 2])) > 50, "too few colours for a plot"
    assert (pixels < 250).any(axis=-1).mean() > 0.05, "almost nothing drawn on the white page"
    return pixels


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self.scripts = 0
        self.body: dict[str, str | None] = {}
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "img":
            self.images.append(attributes)
        elif tag == "script":
            self.scripts += 1
        elif tag == "body":
            self.body = attributes
        for key in ("src", "href"):
            value = attributes.get(key)
            if value and not value.startswith("data:"):
                self.external.append(value)


def parse_page(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def assert_self_contained(report: Path, expected: list[str]) -> _Page:
    """Every image is embedded, decodes, and equals the PNG written beside the report."""
    page = parse_page(report)
    assert page.external == [], "the report links to outside files"
    assert page.scripts == 1, "only the image-check script may be in the page"
    assert [img["alt"] for img in page.images] == expected
    assert page.body["data-expected-images"] == str(len(expected))
    for img in page.images:
        prefix = "data:image/png;base64,"
        assert img["src"].startswith(prefix)
        data = base64.b64decode(img["src"][len(prefix) :], validate=True)
        assert data == (report.parent / img["alt"]).read_bytes()
        assert_picture(data)
    return page


PAIR_PAGE_LIMIT = 300_000  # bytes: a dataset run's pair page links its pictures


def assert_links_inside(page_path: Path, run_folder: Path) -> _Page:
    """A pair page of a dataset run: nothing outside the run folder is linked, every linked
    file exists inside it, every picture links the PNG beside the page and decodes, one of the
    links goes back to the run's report, and the page itself stays small."""
    page = parse_page(page_path)
    root = run_folder.resolve()
    assert page.scripts == 1, "only the image-check script may be in the page"
    for link in page.external:
        assert "://" not in link and not link.startswith("/"), link
        target = (page_path.parent / link).resolve()
        assert target.is_relative_to(root), f"{link} leaves the run folder"
        assert target.is_file(), f"{link} does not exist"
    assert (page_path.parent / "../../report.html").resolve() == root / "report.html"
    assert "../../report.html" in page.external, "no link back to the run's report"
    for img in page.images:
        assert img["src"] == img["alt"], img  # the PNG beside the page
        assert_picture(page_path.parent / img["src"])
    assert page.body["data-expected-images"] == str(len(page.images))
    assert page_path.stat().st_size <= PAIR_PAGE_LIMIT, page_path.stat().st_size
    return page


def disc_pixel(fig, ax, x: float, y: float) -> np.ndarray:
    """RGB of the rendered figure at data point (x, y) of ``ax``."""
    buffer = np.asarray(fig.canvas.buffer_rgba())
    px, py = ax.transData.transform((x, y))
    return buffer[buffer.shape[0] - 1 - round(py), round(px), :3].astype(int)


def rgb(colour) -> np.ndarray:
    return np.round(np.asarray(colour[:3]) * 255).astype(int)


# --- the pair report -------------------------------------------------------------------------


@pytest.mark.model
def test_pair_report_writes_every_picture_and_embeds_them(pair_report, pair):
    folder = pair_report.parent
    expected = ["fhp.png", "bands.png", "strip.png", "curves.png"]
    assert sorted(p.name for p in folder.iterdir()) == sorted([*expected, "report.html"])
    assert_self_contained(pair_report, expected)
    # The strip has a tile per band plus the original, wrapped into rows of 6 so that each tile
    # and its label stay readable (>= 150 px) within the report's 1200 px width.
    k = len(pair["explanation"]["bands"])
    with Image.open(folder / "strip.png") as strip:
        assert strip.width <= 1200 and strip.width / 6 >= 150
        assert strip.height >= 2 * -(-(k + 1) // 6) * 150  # 2 images, every tile there


@pytest.mark.model
def test_pair_report_shows_the_numbers(pair_report, pair):
    text = pair_report.read_text(encoding="utf-8")
    explanation = pair["explanation"]
    assert f"{explanation['score_ref']:.4g}" in text
    assert f"{explanation['threshold']:.4g}" in text
    assert ">match<" in text and "same person (correct)" in text
    assert explanation["model"]["name"] in text and explanation["model"]["provider"] in text
    for side in ("a", "b"):
        for k in (0, 5, 15):
            assert f"<td>{number(explanation[side]['absolute'][k])}</td>" in text
            assert f"<td>{number(explanation[side]['directed'][k])}</td>" in text
    auc = pair["faithfulness"]["a"]["auc"]["deletion"]
    assert f"<td>{number(auc)}</td>" in text
    assert "How to read this" in text
    # One table row per band in the influence table.
    table = text.split("Influence per band", 1)[1].split("</table>", 1)[0]
    assert table.count("<tr>") == 1 + len(explanation["bands"])


@pytest.mark.model
def test_pair_report_without_views_or_curves(pair, tmp_path):
    report = write_pair_report(tmp_path / "plain", pair["explanation"], pair["faces"])
    assert_self_contained(report, ["fhp.png", "bands.png"])
    assert not (tmp_path / "plain" / "strip.png").exists()


@pytest.mark.model
def test_names_are_escaped_in_html_and_plots(pair, tmp_path):
    explanation = copy.deepcopy(pair["explanation"])
    explanation["a"]["source"] = f"/faces/{EVIL}"
    explanation["groups"] = {"<i>gender</i>": "<b>x</b>&"}
    out = tmp_path / "<b>out</b>"
    report = write_pair_report(out, explanation, pair["faces"])
    text = report.read_text(encoding="utf-8")
    assert "<script>alert" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;$x_1$.jpg" in text
    assert "&lt;b&gt;x&lt;/b&gt;&amp;" in text and "&lt;i&gt;gender&lt;/i&gt;" in text
    assert_self_contained(report, ["fhp.png", "bands.png"])


# --- colours and geometry of the FHP ---------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize("radial", ["linear", "area", "log"])
def test_directed_colours_are_centred_at_zero(radial):
    """Also: on every radial display scale each band's colour sits on its own (rescaled) ring."""
    bands = [b.to_dict() for b in BandSchedule.rings(8).resolve(112, 112).bands]
    values = [1.0, -1.0, 0.5, -0.5, 0.0, 0.25, -0.25, 0.0]
    fig = plots.new_figure(5, 5)
    ax = fig.add_subplot()
    mappable = plots.fhp_disc(ax, values, bands, kind="directed", radial=radial, label_rings=False)
    fig.canvas.draw()
    cmap = plots.fhp_cmap("directed")
    assert mappable.norm.vmin == -mappable.norm.vmax == -1.0
    centre = rgb(cmap(0.5))
    scale = plots.radial_scale(bands, radial)
    for value, band in zip(values, bands, strict=True):
        r = float(sum(scale(np.array(band["radius"])))) / 2
        seen = disc_pixel(fig, ax, r * math.cos(1.0), r * math.sin(1.0))
        assert np.abs(seen - rgb(cmap((value + 1) / 2))).max() <= 2, (value, seen)
        if value == 0:
            assert np.abs(seen - centre).max() <= 2  # 0 is the diverging map's neutral centre
    # +v and -v sit at mirror positions of the map, so neither sign is favoured.
    assert mappable.to_rgba(0.0) == cmap(0.5)
    assert np.isclose(mappable.norm(0.5) + mappable.norm(-0.5), 1.0)


@pytest.mark.unit
def test_absolute_colours_span_the_sequential_map():
    bands = [b.to_dict() for b in BandSchedule.rings(4).resolve(112, 112).bands]
    values = [1.0, 0.0, 0.5, 2.0]  # 2.0 saturates
    fig = plots.new_figure(4, 4)
    ax = fig.add_subplot()
    plots.fhp_disc(
        ax, values, bands, kind="absolute", colorbar=False, radial="linear", label_rings=False
    )
    fig.canvas.draw()
    cmap = plots.fhp_cmap("absolute")
    for value, band in zip(values, bands, strict=True):
        r = sum(band["radius"]) / 2
        seen = disc_pixel(fig, ax, 0.0, -r)
        assert np.abs(seen - rgb(cmap(min(value, 1.0)))).max() <= 2, (value, seen)


@pytest.mark.unit
def test_polar_wedges_follow_the_centred_spectrum():
    """Each wedge sits where its coefficients sit in ``imshow(fftshift(spectrum))``, mirrored by π."""
    size = 112
    resolved = BandSchedule.polar(2, 4).resolve(size, size)
    bands = [b.to_dict() for b in resolved.bands]
    values = np.linspace(0.0, 1.0, len(bands))
    fig = plots.new_figure(5, 5)
    ax = fig.add_subplot()
    plots.fhp_disc(
        ax, values, bands, kind="absolute", size=(size, size), radial="linear", label_rings=False
    )
    fig.canvas.draw()
    cmap = plots.fhp_cmap("absolute")
    corner = math.hypot(size // 2, size // 2)
    labels = set()
    for u, v in POLAR_POINTS:
        label = int(resolved.labels_full[u % size, v % size])
        labels.add(label)
        # Screen position: horizontal frequency to the right, vertical frequency downwards.
        for sign in (1, -1):  # the coefficient and its mirror (its conjugate) share a colour
            seen = disc_pixel(fig, ax, sign * v / corner, -sign * u / corner)
            assert np.abs(seen - rgb(cmap(values[label]))).max() <= 2, (u, v, label, seen)
    assert labels == set(range(len(bands)))  # every band was checked


@pytest.mark.unit
def test_area_scale_gives_the_low_bands_room():
    """Guards against the linear disc that squeezes bands 0-4 (where real faces' influence sits)
    into its inner fifth: on the default scale every ring has the same area."""
    bands = [b.to_dict() for b in BandSchedule.rings(16).resolve(112, 112).bands]
    assert plots.DEFAULT_RADIAL == "area"
    scale = plots.radial_scale(bands)
    edges = scale(np.array([b["radius"][1] for b in bands]))
    areas = np.diff(np.concatenate([[0.0], edges]) ** 2)
    np.testing.assert_allclose(areas, areas[0], rtol=1e-9)
    assert scale(np.array(bands[4]["radius"][1])) == pytest.approx(np.sqrt(5 / 16))
    log = plots.radial_scale(bands, "log")
    assert log(np.array(bands[4]["radius"][1])) > 0.5 > bands[4]["radius"][1]


@pytest.mark.unit
def test_rings_are_labelled_with_their_band_index():
    bands = [b.to_dict() for b in BandSchedule.rings(16).resolve(112, 112).bands]
    fig = plots.new_figure(4, 4)
    ax = fig.add_subplot()
    plots.fhp_disc(ax, np.zeros(16), bands, kind="absolute", colorbar=False)
    labels = [t.get_text() for t in ax.texts]
    assert labels == [str(k) for k in range(16)]  # every ring, thin ones too
    assert all(t.get_fontsize() * fig.dpi / 72 >= 10 for t in ax.texts)  # at least 10 px


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.model
def test_unwritable_output_folder_is_a_clear_error(pair, tmp_path, frll_run):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a regular file")
    out = blocker / "report"
    with pytest.raises(OutputError, match=re.escape(str(out))) as info:
        write_pair_report(out, pair["explanation"], pair["faces"])
    assert isinstance(info.value, FreqxfrError)
    assert f"{blocker} is a file" in str(info.value)
    with pytest.raises(OutputError, match="is a file"):
        write_dataset_report(out, frll_run["summary"])
    with pytest.raises(OutputError, match=re.escape(str(blocker))):
        plots.plot_band_bars(pair["explanation"], blocker / "bands.png")
    assert blocker.read_text() == "a regular file"


_READ_ONLY_SCRIPT = """
import json, sys
import numpy as np
from freqxfr.common.errors import OutputError
from freqxfr.reports.pair import write_pair_report
folder, explanation, faces = sys.argv[1:4]
try:
    write_pair_report(folder, json.loads(open(explanation).read()), np.load(faces))
except OutputError as exc:
    print(exc)
    sys.exit(3)
"""


def _read_only_runner(folder: Path) -> list[str] | None:
    """A command prefix under which ``folder`` is read-only, even for root (CI runs as root, and
    root ignores permission bits): a private mount namespace with a read-only bind mount of the
    folder (``unshare``). Falls back to permission bits for other users; None if neither works."""
    if os.geteuid() != 0:
        folder.chmod(0o500)
        return []
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    mount = f'mount --bind {folder} {folder} && mount -o remount,bind,ro {folder} && exec "$@"'
    prefix = [unshare, "-rm", "sh", "-c", mount, "sh"]
    probe = subprocess.run([*prefix, "sh", "-c", f"touch {folder}/probe"], capture_output=True)
    if probe.returncode == 0 or b"Read-only" not in probe.stderr:
        (folder / "probe").unlink(missing_ok=True)
        return None
    return prefix


@pytest.mark.integration
def test_read_only_folder_is_a_clear_error(pair, tmp_path):
    """A report into a folder that can't be written is an OutputError naming the folder, also when
    run as root (as CI is): the folder is made read-only by a read-only bind mount."""
    folder = tmp_path / "locked"
    folder.mkdir()
    runner = _read_only_runner(folder)
    if runner is None:
        pytest.skip("no way to make a read-only folder for root here (unshare not permitted)")
    explanation = tmp_path / "explanation.json"
    explanation.write_text(json.dumps(pair["explanation"]))
    np.save(tmp_path / "faces.npy", pair["faces"])
    try:
        result = subprocess.run(
            [
                *runner,
                sys.executable,
                "-c",
                _READ_ONLY_SCRIPT,
                str(folder),
                str(explanation),
                str(tmp_path / "faces.npy"),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        folder.chmod(0o700)
    assert result.returncode == 3, result.stderr
    assert str(folder) in result.stdout
    assert not list(folder.iterdir())  # nothing half-written


@pytest.mark.model
def test_malformed_input_is_named(pair, tmp_path):
    explanation = copy.deepcopy(pair["explanation"])
    del explanation["a"]["directed"]
    with pytest.raises(InputError, match=r"a\.directed"):
        write_pair_report(tmp_path / "x", explanation, pair["faces"])
    explanation = copy.deepcopy(pair["explanation"])
    explanation["b"]["absolute"] = explanation["b"]["absolute"][:-1]
    with pytest.raises(InputError, match=r"b\.absolute must be 16 values"):
        plots.plot_band_bars(explanation, tmp_path / "bars.png")
    with pytest.raises(InputError, match=r"faces must have shape \(2, H, W, 3\)"):
        plots.plot_pair(pair["explanation"], pair["faces"][:1], tmp_path / "fhp.png")
    with pytest.raises(InputError, match="views must have shape"):
        plots.plot_masked_strip(
            pair["views"][:, :3], pair["explanation"]["bands"], tmp_path / "s.png"
        )
    with pytest.raises(InputError, match="kind must be"):
        plots.fhp_norm("signed")
    with pytest.raises(InputError, match="cannot embed"):
        write_report(tmp_path / "r", "t", [("s", "", [tmp_path / "missing.png"])])


# --- thread safety and pyplot --------------------------------------------------------------------


@pytest.mark.integration
def test_plots_are_thread_safe_and_leave_pyplot_alone(pair, tmp_path):
    serial = plots.plot_band_bars(pair["explanation"], tmp_path / "serial.png").read_bytes()
    errors: list[BaseException] = []

    def draw(i: int) -> None:
        try:
            plots.plot_band_bars(pair["explanation"], tmp_path / f"t{i}.png")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=draw, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for i in range(4):
        assert (tmp_path / f"t{i}.png").read_bytes() == serial
    probe = (
        "import sys, numpy as np; from freqxfr.reports import plots, html, pair, dataset; "
        "from freqxfr.reports import morph as morph_report; "
        "morph_report.plot_class_profiles({'x': (np.arange(4.0), np.ones(4))}, sys.argv[1]); "
        "print('matplotlib.pyplot' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path / "p.png")],
        capture_output=True, text=True, env=env, check=True, timeout=120,
    )  # fmt: skip
    assert done.stdout.strip() == "False"


# --- the dataset report and the scenario plots -----------------------------------------------


@pytest.fixture(scope="module")
def crossres(explainer, lfw_pairs) -> dict:
    """A small real cross-resolution sweep: the probe side downscaled by each factor (area) and
    upscaled back (bicubic); accuracy, mean absolute profile and centroid (bootstrap CI) per factor."""
    chosen = [p for p in lfw_pairs if p.same][:3] + [p for p in lfw_pairs if not p.same][:3]
    faces = [(explainer.aligned_crop(p.path_a), explainer.aligned_crop(p.path_b)) for p in chosen]
    rng = np.random.default_rng(0)
    accuracy, absolute, centroids, lo, hi = [], [], [], [], []
    for factor in FACTORS:
        rows, correct = [], 0
        for p, (a, b) in zip(chosen, faces, strict=True):
            h, w = b.shape[:2]
            small = Image.fromarray(b).resize((w // factor, h // factor), Image.Resampling.BOX)
            probe = np.asarray(small.resize((w, h), Image.Resampling.BICUBIC))
            e = explainer.explain(a, probe, aligned=True, same=p.same).to_dict()
            correct += e["decision"] == p.same
            rows.append([e["a"]["absolute"], e["b"]["absolute"]])
        rows_arr = np.asarray(rows)  # (pairs, 2, K)
        per_pair = profiles.centroid(rows_arr).mean(axis=1)
        boot = [per_pair[rng.integers(0, per_pair.size, per_pair.size)].mean() for _ in range(200)]
        accuracy.append(correct / len(chosen))
        absolute.append(rows_arr.reshape(-1, rows_arr.shape[-1]).mean(axis=0))
        centroids.append(per_pair.mean())
        lo.append(min(np.percentile(boot, 2.5), per_pair.mean()))
        hi.append(max(np.percentile(boot, 97.5), per_pair.mean()))
    return {"accuracy": accuracy, "absolute": np.asarray(absolute), "centroid": centroids,
            "lo": lo, "hi": hi}  # fmt: skip


@pytest.fixture(scope="module")
def morphs(explainer, data_dir) -> dict:
    """Real scores of four FRLL morphs (two pairs, full and spliced) against both probes."""
    with open(data_dir / "frll_morphs" / "index.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))[:4]
    cache: dict[str, np.ndarray] = {}

    def embedding(rel: str) -> np.ndarray:
        if rel not in cache:
            face = explainer.aligned_crop(data_dir / rel)
            cache[rel] = explainer.model.embed(face[None])[0]
        return cache[rel]

    score_a, score_b = [], []
    for row in rows:
        m = embedding(row["path"])
        score_a.append(float(explainer.model.score(m, embedding(row["probe_a_smiling"]))))
        score_b.append(float(explainer.model.score(m, embedding(row["probe_b_smiling"]))))
    return {"a": score_a, "b": score_b, "labels": [r["method"] for r in rows]}


def det_curve(attack: list[float], bona_fide: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """APCER/BPCER of 'lower comparison score means attack' at every threshold."""
    thresholds = np.unique(np.concatenate([attack, bona_fide, [np.inf]]))
    attack_arr, bona_arr = np.asarray(attack), np.asarray(bona_fide)
    apcer = np.array([(attack_arr >= t).mean() for t in thresholds])
    bpcer = np.array([(bona_arr < t).mean() for t in thresholds])
    return apcer, bpcer


@pytest.fixture(scope="module")
def dataset_report(frll_run, crossres, morphs, explainer, tmp_path_factory) -> dict:
    """The dataset report of the FRLL run, plus cross-resolution and morph sections."""
    summary = frll_run["summary"]
    out = tmp_path_factory.mktemp("dataset")  # scenario commands also write into the run's folder
    bona_fide = [s for same, s in frll_run["scores"] if same]
    classes = summary["classes"]
    pictures = [
        crossres_report.plot_accuracy_vs_factor(FACTORS, crossres["accuracy"], out / "accuracy.png"),
        crossres_report.plot_profiles_by_factor(FACTORS, crossres["absolute"], out / "by_factor.png"),
        crossres_report.plot_centroid_shift(
            FACTORS, crossres["centroid"], crossres["lo"], crossres["hi"], out / "centroid.png"
        ),
        morph_report.plot_score_scatter(
            morphs["a"], morphs["b"], explainer.model.card.threshold, morphs["labels"],
            out / "scatter.png",
        ),
        plots.plot_det(
            {"comparison score": det_curve(morphs["a"] + morphs["b"], bona_fide)}, out / "det.png"
        ),
        morph_report.plot_class_profiles(
            {name: (p["directed_mean"], p["directed_std"]) for name, p in classes.items()},
            out / "classes.png",
        ),
    ]  # fmt: skip
    table = html_table(["factor", "accuracy"], zip(FACTORS, crossres["accuracy"], strict=True))
    extra = [
        ("Cross-resolution", table, pictures[:3]),
        Section("Morphing attacks", "<p>four real FRLL morphs</p>", pictures[3:]),
    ]
    report = write_dataset_report(out, summary, extra_sections=extra)
    return {"report": report, "pictures": pictures, "summary": summary}


@pytest.mark.model
def test_scenario_plots_are_real_pictures(dataset_report):
    for picture in dataset_report["pictures"]:
        assert_picture(picture, (300, 250))


@pytest.mark.model
def test_dataset_report_with_scenario_sections(dataset_report):
    summary, report = dataset_report["summary"], dataset_report["report"]
    assert set(summary["groups"]) == {"gender", "ethnicity"}
    # With no wrong decision the outcomes repeat the classes, and the report says so instead.
    errors = any(k.startswith("false_") for k in plots.usable_profiles(summary["outcomes"]))
    names = ["profiles.png", *(["outcomes.png"] if errors else []), "groups.png"]
    assert_self_contained(report, names + [p.name for p in dataset_report["pictures"]])
    text = report.read_text(encoding="utf-8")
    for value in ("genuine", "impostor", "female", "male", "ethnicity", "Cross-resolution"):
        assert value in text
    assert f"{summary['accuracy']:.4g}" in text
    for k in (0, 7):
        mean = summary["classes"]["genuine"]["absolute_mean"][k]
        std = summary["classes"]["genuine"]["absolute_std"][k]
        assert f"{number(mean)} ± {number(std)}" in text


@pytest.mark.unit
def test_directed_heat_map_puts_zero_at_the_centre_colour(tmp_path):
    # Lopsided values: a [min, max] scale would put 0 at 2/3 of the map, not at its white centre.
    values = np.array([[-1.0, -0.5, 0.0, 0.25, 0.5]] * 2)
    path = crossres_report.plot_profiles_by_factor(
        (1, 2), values, tmp_path / "d.png", kind="directed"
    )
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB")).astype(int)
    cmap = plots.fhp_cmap("directed")
    for value in (0.0, -1.0, 0.5):
        hits = (np.abs(pixels - rgb(cmap((value + 1) / 2))).max(axis=-1) <= 1).sum()
        assert hits > 2000, (value, hits)  # a whole cell of that colour, not a colourbar sliver
    with pytest.raises(InputError, match="profiles must be"):
        crossres_report.plot_profiles_by_factor(FACTORS, values, tmp_path / "bad.png")


# --- a real headless browser -----------------------------------------------------------------


def find_browser() -> str | None:
    candidates = [os.environ.get("FREQXFR_CHROMIUM"), "chromium", "chromium-browser",
                  "google-chrome", "google-chrome-stable"]  # fmt: skip
    for name in candidates:
        if name and (found := shutil.which(name)):
            return found
    return None


@pytest.fixture(scope="module")
def browser() -> str:
    found = find_browser()
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no chromium binary found, and CI must run the browser tests")
        pytest.skip("no chromium binary found (apt-get install chromium, or set FREQXFR_CHROMIUM)")
    return found


def run_browser(browser: str, profile: Path, *args: str) -> str:
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.integration
@pytest.mark.browser
def test_reports_render_in_headless_chromium(browser, pair_report, dataset_report, tmp_path):
    # The dataset report: 6 scenario pictures, profiles, groups (and outcomes when any are wrong).
    in_dataset = len(parse_page(dataset_report["report"]).images)
    assert in_dataset >= 8
    for report, expected in ((pair_report, 4), (dataset_report["report"], in_dataset)):
        dom = run_browser(browser, tmp_path / "profile", "--dump-dom", report.as_uri())
        body = re.search(r"<body[^>]*>", dom)
        assert body, dom[:500]
        assert 'data-broken-images="0"' in body.group(0), body.group(0)
        assert f'data-loaded-images="{expected}"' in body.group(0), body.group(0)
        assert "[rendered]</title>" in dom
    shot = tmp_path / "shot.png"
    run_browser(browser, tmp_path / "profile", "--hide-scrollbars", "--window-size=1280,2400",
                f"--screenshot={shot}", pair_report.as_uri())  # fmt: skip
    pixels = assert_picture(shot, (1280, 2400))
    # The FHP figure's colours (viridis yellow of the most influential band) reach the screen.
    yellow = np.abs(pixels.astype(int) - rgb(plots.fhp_cmap("absolute")(1.0))).max(axis=-1) <= 8
    assert yellow.sum() > 100


# --- the dataset report a reviewer can act on ------------------------------------------------


@pytest.fixture(scope="module")
def reviewed_run(explainer, data_dir, tmp_path_factory) -> dict:
    """A real FRLL dataset run through ``run_dataset`` with one wrong label each way (so the model's
    correct decisions disagree with them: a false match and a false non-match) and a missing
    file (a failed pair)."""
    listed = read_pairs(data_dir / "frll" / "pairs.csv", data_dir)
    genuine = [p for p in listed if p.same][:3]
    impostor = [p for p in listed if not p.same][:3]
    pairs = [
        *genuine[:2],
        dataclasses.replace(genuine[2], same=False),
        *impostor[:2],
        dataclasses.replace(impostor[2], same=True),
        Pair(data_dir / "frll" / "neutral" / "no_such_photo.jpg", genuine[0].path_b, True),
    ]
    out = tmp_path_factory.mktemp("reviewed_run")
    summary = run_dataset(pairs, out, explainer, progress=False)
    render_run(out)  # the report and the pages, drawn from the run folder
    return {
        "out": out,
        "summary": summary,
        "report": out / "report.html",
        "false_match": 2,
        "false_non_match": 5,
        "failed": 6,
    }


def section_html(text: str, title: str) -> str:
    assert f"<h2>{title}</h2>" in text, title
    return text.split(f"<h2>{title}</h2>", 1)[1].split("</section>", 1)[0]


@pytest.mark.model
def test_dataset_report_shows_scores_roc_and_det(reviewed_run):
    """Guards against a dataset report without the verification view: per-class score histograms
    with the threshold, ROC and DET curves."""
    page = parse_page(reviewed_run["report"])
    figures = [img["alt"] for img in page.images if img["src"].startswith("data:image/png")]
    for name in ("scores.png", "roc.png", "verification_det.png"):
        assert name in figures, figures
        assert_picture(reviewed_run["out"] / name, (400, 300))
    text = reviewed_run["report"].read_text(encoding="utf-8")
    scores = section_html(text, "Scores, ROC and DET")
    assert "3 genuine and 3 impostor pairs" in scores  # the labels as given, failed pair left out


@pytest.mark.model
def test_dataset_report_lists_wrong_and_failed_pairs_with_links(reviewed_run):
    """Guards against wrong decisions and failures that a reviewer cannot find or open: each is
    listed with thumbnails and its reason, and links to its own page, which exists."""
    text = reviewed_run["report"].read_text(encoding="utf-8")
    out = reviewed_run["out"]
    for title, index, reason in (
        ("False matches", reviewed_run["false_match"], "score "),
        ("False non-matches", reviewed_run["false_non_match"], "score "),
        ("Failed pairs", reviewed_run["failed"], "no_such_photo.jpg"),
    ):
        part = section_html(text, title)
        assert f'href="pairs/{index:06d}/report.html">{index}</a>' in part, part[:800]
        assert reason in part
        assert part.count('<img src="data:image/jpeg;base64,') >= (
            1 if title == "Failed pairs" else 2
        )
    links = re.findall(r'href="([^"]+)"', text)
    assert len(links) == 3
    for link in links:
        target = out / link
        assert target.is_file(), link
        assert_links_inside(target, out)
    wrong = parse_page(out / links[0])
    assert [img["alt"] for img in wrong.images] == ["fhp.png", "bands.png", "strip.png"]
    # Only the wrong and failed pairs got pages (the default), not the correct ones.
    assert sorted(p.name for p in (out / "pairs").iterdir()) == [
        f"{i:06d}" for i in sorted((2, 5, 6))
    ]


@pytest.mark.model
def test_pair_report_names_files_not_paths(pair_report, pair):
    """Guards against a pair report showing long absolute paths (e.g. inside site-packages)."""
    text = pair_report.read_text(encoding="utf-8")
    decision = section_html(text, "Decision")
    path = pair["explanation"]["a"]["source"]
    assert f">{os.path.basename(path)}</span>" in decision
    assert f">{path}<" not in decision


@pytest.mark.model
def test_tables_use_one_number_format(pair_report):
    """Guards against a table mixing fixed decimals and significant digits, and against ranges
    that wrap inside their cell."""
    table = section_html(pair_report.read_text(encoding="utf-8"), "Influence per band")
    cells = re.findall(r">(-?\d+\.\d+)</td>", table)
    assert cells
    # 4 significant digits everywhere: no trailing zeros (a fixed "0.500" was mixed in before).
    assert [c for c in cells if c.endswith("0")] == []
    assert all(len(c.replace("-", "").replace(".", "").lstrip("0")) <= 4 for c in cells)
    assert "\u2060–\u2060" in table and "coefficients" in table


@pytest.mark.integration
@pytest.mark.browser
def test_dataset_report_and_its_pair_pages_render_in_headless_chromium(
    browser, reviewed_run, tmp_path
):
    """Every picture of the dataset report (figures and thumbnails) and of every linked pair page
    decodes in a real browser, and every link resolves to a page that renders."""
    report = reviewed_run["report"]
    pages = [report] + [
        report.parent / link
        for link in re.findall(r'href="([^"]+)"', report.read_text(encoding="utf-8"))
    ]
    assert len(pages) == 4
    for page in pages:
        dom = run_browser(browser, tmp_path / "profile", "--dump-dom", page.as_uri())
        body = re.search(r"<body[^>]*>", dom)
        assert body, dom[:500]
        assert 'data-broken-images="0"' in body.group(0), (page, body.group(0))
        expected = re.search(r'data-expected-images="(\d+)"', body.group(0)).group(1)
        assert f'data-loaded-images="{expected}"' in body.group(0), (page, body.group(0))
        assert "[rendered]</title>" in dom
    dom = run_browser(browser, tmp_path / "profile", "--dump-dom", report.as_uri())
    for name in ("scores.png", "roc.png", "verification_det.png"):
        assert f'alt="{name}"' in dom


# --- region × band sections ------------------------------------------------------------------


@pytest.fixture(scope="module")
def region_run(explainer, lfw_pairs, tmp_path_factory) -> dict:
    """A real dataset run with face regions (dlib, 4 rings): a genuine and an impostor LFW pair,
    each with its own page, and one pair report written the way ``explain --regions`` does."""
    from freqxfr import write_pair_outputs

    cells = explanations.Explainer(explainer.model, 4, regions="face")
    pairs = [next(p for p in lfw_pairs if p.same), next(p for p in lfw_pairs if not p.same)]
    out = tmp_path_factory.mktemp("region_run")
    run_dataset(pairs, out, cells, progress=False, pair_pages="all")
    render_run(out)
    single = write_pair_outputs(
        cells, pairs[0].path_a, pairs[0].path_b, tmp_path_factory.mktemp("region_pair")
    )
    return {"report": out / "report.html", "pair_report": single.report_path}


@pytest.mark.model
def test_region_sections_embed_their_pictures(region_run):
    """Guards against a region section whose picture is missing or not embedded: the pair
    report and the dataset report carry regions.png as a decodable data URI that equals the
    file beside them; each pair page of the run links that file beside it."""
    report = region_run["report"]
    pages = [region_run["pair_report"], report, *sorted(report.parent.glob("pairs/*/report.html"))]
    assert len(pages) == 4
    for page in pages:
        parsed = parse_page(page)
        (img,) = [i for i in parsed.images if i["alt"] == "regions.png"]
        if page.parent.parent.name == "pairs":  # a dataset run's pair page links its pictures
            assert_links_inside(page, report.parent)
            data = (page.parent / img["src"]).read_bytes()
        else:
            data = base64.b64decode(img["src"].split(",", 1)[1], validate=True)
        assert data == (page.parent / "regions.png").read_bytes()
        assert_picture(data, (600, 300))
        assert "<h2>Where and which frequency</h2>" in page.read_text(encoding="utf-8")


@pytest.mark.integration
@pytest.mark.browser
def test_region_reports_render_in_headless_chromium(browser, region_run, tmp_path):
    """The pair report with regions, the dataset report with its mean maps and every pair page
    render in a real browser with every picture decoded, regions.png among them."""
    report = region_run["report"]
    pages = [region_run["pair_report"], report, *sorted(report.parent.glob("pairs/*/report.html"))]
    for page in pages:
        dom = run_browser(browser, tmp_path / "profile", "--dump-dom", page.as_uri())
        body = re.search(r"<body[^>]*>", dom)
        assert body, dom[:500]
        assert 'data-broken-images="0"' in body.group(0), (page, body.group(0))
        expected = re.search(r'data-expected-images="(\d+)"', body.group(0)).group(1)
        assert int(expected) >= 1
        assert f'data-loaded-images="{expected}"' in body.group(0), (page, body.group(0))
        assert 'alt="regions.png"' in dom and "[rendered]</title>" in dom


# --- drawn from the run folder alone ------------------------------------------------------------


@pytest.fixture
def no_models(tmp_path, monkeypatch):
    """No model can be loaded: an empty model cache, and (mocks) an ONNX Runtime that refuses to
    open a session, a model loader and an aligner that refuse to run."""
    import onnxruntime

    from freqxfr.common import cache
    from freqxfr.imaging import align
    from freqxfr.model import verifier

    def refuse(*args, **kwargs):
        raise AssertionError("a report tried to load a model or align a face")

    empty = tmp_path / "empty-model-cache"
    empty.mkdir()
    monkeypatch.setenv(cache.ENV_VAR, str(empty))
    monkeypatch.setattr(onnxruntime, "InferenceSession", refuse)
    monkeypatch.setattr(verifier, "load_model", refuse)
    monkeypatch.setattr(align, "card_crop", refuse)
    return empty


@pytest.mark.integration
def test_reports_render_again_from_the_run_folder_alone(
    reviewed_run, region_run, tmp_path, no_models
):
    """Guards against a report that needs a model (or the photos re-aligned) to be drawn: a
    dataset run's report and pair pages, a region run's, and an explained pair's report are drawn
    again from a copy of their folder with every picture and page deleted, with no model cache
    and no way to open a model, and come out the same page for page."""
    folders = (
        reviewed_run["out"],
        region_run["report"].parent,
        region_run["pair_report"].parent,
    )
    for source in folders:
        target = tmp_path / source.name
        shutil.copytree(source, target)
        drawn = sorted(
            p.relative_to(target) for p in target.rglob("*") if p.suffix in (".png", ".html")
        )
        assert Path("report.html") in drawn
        for path in drawn:
            (target / path).unlink()
        render_run(target)
        redrawn = sorted(
            p.relative_to(target) for p in target.rglob("*") if p.suffix in (".png", ".html")
        )
        assert redrawn == drawn, source
        for path in drawn:
            if path.suffix == ".html":
                assert (target / path).read_text("utf-8") == (source / path).read_text("utf-8")
    assert not any(no_models.iterdir())  # nothing was fetched into the model cache
    pages = sorted((tmp_path / folders[0].name).glob("pairs/*/report.html"))
    assert len(pages) == 3  # the wrong and failed pairs, as the run chose


# --- the raster FHP (what the pair report draws) -------------------------------------------------


def raster_pixel(image, px: int, lim: float, x: float, y: float) -> np.ndarray:
    """RGB of a raster disc at display point (x right, y up) for a disc of half-width ``lim``."""
    pixels = np.asarray(image)
    col = int((x + lim) / (2 * lim) * px)
    row = int((lim - y) / (2 * lim) * px)
    return pixels[row, col].astype(int)


@pytest.mark.unit
@pytest.mark.parametrize("radial", ["linear", "area", "log"])
def test_raster_disc_colours_each_ring_like_the_matplotlib_disc(radial):
    """The numpy-rasterised disc keeps the FHP's meaning: each band's colour on its own
    (rescaled) ring, the directed map centred at 0, saturation outside [-1, 1]."""
    bands = [b.to_dict() for b in BandSchedule.rings(8).resolve(112, 112).bands]
    values = [1.0, -1.0, 0.5, -0.5, 0.0, 0.25, -0.25, 3.0]
    image = plots.fhp_raster(values, bands, kind="directed", radial=radial, label_rings=False)
    assert image.size == (plots.FHP_DISC_PX, plots.FHP_DISC_PX)
    cmap, norm = plots.fhp_cmap("directed"), plots.fhp_norm("directed")
    scale = plots.radial_scale(bands, radial)
    lim = 1.03 * float(scale(bands[-1]["radius"][1]))
    for value, band in zip(values, bands, strict=True):
        r = float(sum(scale(np.array(band["radius"])))) / 2
        seen = raster_pixel(image, plots.FHP_DISC_PX, lim, r * math.cos(1.0), r * math.sin(1.0))
        assert np.abs(seen - rgb(cmap(norm(value)))).max() <= 2, (value, seen)


@pytest.mark.unit
def test_raster_polar_wedges_follow_the_centred_spectrum():
    size = 112
    resolved = BandSchedule.polar(2, 4).resolve(size, size)
    bands = [b.to_dict() for b in resolved.bands]
    values = np.linspace(0.0, 1.0, len(bands))
    image = plots.fhp_raster(
        values, bands, kind="absolute", size=(size, size), radial="linear", label_rings=False
    )
    cmap = plots.fhp_cmap("absolute")
    corner = math.hypot(size // 2, size // 2)
    lim = 1.03 * max(b["radius"][1] for b in bands)
    for u, v in POLAR_POINTS:
        label = int(resolved.labels_full[u % size, v % size])
        for sign in (1, -1):  # screen: horizontal frequency right, vertical frequency down
            seen = raster_pixel(
                image, plots.FHP_DISC_PX, lim, sign * v / corner, -sign * u / corner
            )
            assert np.abs(seen - rgb(cmap(values[label]))).max() <= 2, (u, v, label, seen)


@pytest.mark.unit
def test_raster_rings_are_labelled_like_the_matplotlib_disc():
    bands = [b.to_dict() for b in BandSchedule.rings(16).resolve(112, 112).bands]
    labels = [i for _, i, _ in plots.ring_labels(bands, plots.radial_scale(bands))]
    assert labels == list(range(16))
    fig = plots.new_figure(4, 4)
    ax = fig.add_subplot()
    plots.fhp_disc(ax, np.zeros(16), bands, kind="absolute", colorbar=False)
    assert [t.get_text() for t in ax.texts] == [str(i) for i in labels]


# --- screenshots: no blank plot, no page pushed wider than the window ---------------------------


@pytest.mark.integration
@pytest.mark.browser
def test_the_screenshot_check_finds_a_blank_plot_and_an_overflowing_table(tmp_path):
    """The check itself: a white picture and a table wider than the window are both caught."""
    from _report_browser import browser_or_skip, report_problems

    browser = browser_or_skip()
    white = tmp_path / "white.png"
    Image.new("RGB", (300, 200), "white").save(white)
    wide = html_table([f"column {i}" for i in range(4)], [["x" * 400] * 4])
    wide = wide.replace("<table>", '<table style="display:table">')  # unscrolled, as before
    page = write_report(tmp_path / "bad", "bad", [Section("wide", wide, [white])])
    problems = report_problems(browser, page, tmp_path)
    assert any("white.png is blank" in p for p in problems), problems
    assert any("the page is" in p for p in problems), problems


@pytest.mark.integration
@pytest.mark.browser
def test_pair_dataset_and_region_reports_pass_the_screenshot_check(
    pair_report, reviewed_run, region_run, tmp_path
):
    from _report_browser import browser_or_skip, report_problems

    browser = browser_or_skip()
    pages = [pair_report, reviewed_run["report"], region_run["report"], region_run["pair_report"]]
    pages.append(next(iter(sorted(reviewed_run["out"].glob("pairs/*/report.html")))))
    for page in pages:
        assert report_problems(browser, page, tmp_path) == [], page
