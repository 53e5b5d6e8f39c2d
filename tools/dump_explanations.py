"""Dump explanations of 20 LFW pairs on both models as JSON, to compare two freqxfr versions.

Bands (20 pairs, explain_pairs of 6), region cells (grid:2x2, 4 pairs), a template explanation
and the faithfulness curves (bands and cells), through the engine or (``--direct``) without it;
timings, version and the planner (a setting since 0.2) are left out. Run it with each version
installed (e.g. ``PYTHONPATH=old/python``) and compare the files: they must be equal.

    python tools/dump_explanations.py OUT.json [--direct]
"""

import json
import sys
from pathlib import Path

import numpy as np

import freqxfr
from freqxfr.explanations.explainer import Explainer
from freqxfr.explanations.pairs import read_pairs


def _clean(record: dict) -> None:
    for key in ("timings_ms", "planner", "freqxfr_version"):
        record.pop(key, None)


out = Path(sys.argv[1])
DIRECT = "--direct" in sys.argv[2:]
data = Path(__file__).resolve().parents[1].parent / "shared" / "data"
pairs = read_pairs(data / "lfw_aligned112" / "pairs_generated.csv", root=data)[:20]
result = {}
for model in ("dlib_resnet", "sface"):
    for regions in (None, "grid:2x2"):
        e = Explainer(freqxfr.load_model(model, engine=not DIRECT), 8, regions=regions)
        recs = []
        for p in pairs[: (20 if regions is None else 4)]:
            d = e.explain(p.path_a, p.path_b).to_dict()
            _clean(d)
            recs.append(d)
        streamed = [x.to_dict() for x in e.explain_pairs(pairs[:6])] if regions is None else []
        for d in streamed:
            _clean(d)
        tmpl = e.explain_template(
            pairs[0].path_a, e.model.embed(e.align(pairs[0].path_b).pixels[None])
        ).to_dict()
        _clean(tmpl)
        if regions is None:
            faith = [e.faithfulness(p.path_a, p.path_b, seeds=2).to_dict() for p in pairs[:2]]
        else:
            try:  # 0.2
                from freqxfr.explanations.faithfulness import cell_faithfulness
            except ImportError:  # before 0.2
                from freqxfr.explanations.region_faithfulness import cell_faithfulness

            p = pairs[0]
            faces = np.stack([e.align(p.path_a).pixels, e.align(p.path_b).pixels])
            ex = e.explain(*faces, aligned=True)
            faith = [c.to_dict() for c in cell_faithfulness(e, faces, ex, seeds=2)]
        result[f"{model}/{regions}"] = {
            "pairs": recs,
            "stream": streamed,
            "template": tmpl,
            "faith": faith,
        }
out.write_text(json.dumps(result, sort_keys=True))
print("ok", len(result))
