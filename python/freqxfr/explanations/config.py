"""The explainer's settings as one value: :class:`ExplainerConfig`.

Every setting of an :class:`~freqxfr.explanations.explainer.Explainer` is one field here, and
each field says, in its metadata, where it goes:

- ``provenance``: it is one of :meth:`Explainer.settings` (``explanation.json``, ``run.json``,
  the reports), under its own name (:data:`SETTINGS_KEYS`);
- ``restart``: a resumed run must use the same (``runs.folder.explainer_settings``), under the
  name of its command-line option;
- ``mask``: explainers that differ in it mask differently (the engine masks only pairs of
  explainers with equal :meth:`ExplainerConfig.mask_key` together);
- ``cli``: the ``argparse`` arguments of its command-line option (``cli.options`` adds them and
  builds the config back from the parsed arguments);
- ``label``: its name in a report's provenance table;
- ``unrecorded``: the value an older freqxfr used before the setting was recorded (a run it
  started continues only with that value, ``runs.folder.UNRECORDED_SETTINGS``).

The Dask spec (``runs.distributed.ExplainerSpec``), the restart check, the CLI, ``explain()``'s
kept explainers and :meth:`Explainer.with_` all read this one list, so a new setting is a new
field here plus the code that uses it.

``model``, ``schedule`` and ``regions`` are the three fields with their own rules (a loaded
model, a schedule resolved at the model's size with its bands, region weights); their metadata
says ``special``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

from freqxfr.common.errors import InputError
from freqxfr.common.version import __version__
from freqxfr.core.bands import BandSchedule
from freqxfr.core.masking import PLANNERS
from freqxfr.imaging.align import DEFAULT_PADDING, PADDINGS, check_padding

DEFAULT_BANDS = 16
#: The masking backends a user may name (``freqxfr.available_backends()`` says which run here).
BACKEND_NAMES = ("cpp", "numpy", "scipy", "pyfftw")
#: Explainer(model, schedule, mode, domain, backend): the settings that may be given by position.
POSITIONAL = ("model", "schedule", "mode", "domain", "backend")
#: The default memory budget: a 100-pair ``freqxfr dataset`` run peaks well under 1.5 GB with
#: dlib's ResNet and SFace alike (docs/guide/performance.md).
DEFAULT_MEMORY_BUDGET = 2**30
_UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGT]?)(I?B)?\s*", re.IGNORECASE)


def _budget(value: Any) -> int:
    """A memory budget given, or the default: ``$FREQXFR_MEMORY_BUDGET``, else 1 GB."""
    if value is not None:
        return memory_size(value)
    env = os.environ.get("FREQXFR_MEMORY_BUDGET", "").strip()
    return memory_size(env, what="FREQXFR_MEMORY_BUDGET") if env else DEFAULT_MEMORY_BUDGET


def _cli_memory_size(text: str) -> int:
    """``--memory-budget``'s argparse type: its error is argparse's one line."""
    try:
        return memory_size(text, what="--memory-budget")
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--memory-budget: ")) from None


def memory_size(value: Any, *, what: str = "memory_budget") -> int:
    """Bytes of a memory size: an int (bytes) or a string such as ``"512MB"``, ``"1.5GB"``,
    ``"2G"`` or ``"800MiB"`` (units are powers of 1024: 1GB = 1024 MB = 2**30 bytes)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        size = int(value)
    elif isinstance(value, str) and (match := _SIZE.fullmatch(value)):
        size = int(float(match.group(1)) * _UNITS[match.group(2).upper()])
    else:
        raise InputError(
            f"{what}: expected a size such as 512MB or 2GB (or a number of bytes), got {value!r}"
        )
    if size < 2**20:
        raise InputError(f"{what}: {value!r} is less than 1 MB; give a size such as 512MB or 2GB")
    return size


def _meta(
    *,
    provenance: bool = False,
    restart: str | None = None,
    mask: bool = False,
    cli: Mapping[str, Any] | None = None,
    label: str | None = None,
    special: bool = False,
    unrecorded: Any = None,
) -> dict[str, Any]:
    """A field's roles (see the module's docstring)."""
    return {
        "provenance": provenance,
        "restart": restart,
        "mask": mask,
        "cli": cli,
        "label": label,
        "special": special,
        "unrecorded": unrecorded,
    }


def _recorded(
    default: Any,
    *,
    label: str,
    help_text: str,
    restart: str | None = None,
    mask: bool = True,
    unrecorded: Any = None,
    **cli: Any,
) -> Any:
    """A setting recorded in the provenance, with a plain command-line option (``cli``: its
    argparse arguments besides ``help``, e.g. ``choices``); by default one that changes the
    masking."""
    return dataclasses.field(
        default=default,
        metadata=_meta(
            provenance=True,
            restart=restart,
            mask=mask,
            label=label,
            unrecorded=unrecorded,
            cli={**cli, "help": help_text},
        ),
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExplainerConfig:
    """The settings of an explainer; frozen and (unless ``regions`` is an array) hashable.

    The field order is the order of :meth:`Explainer.settings`' keys. See
    :class:`~freqxfr.explanations.explainer.Explainer` for what each one means.
    """

    model: Any = dataclasses.field(default=None, metadata=_meta(provenance=True, special=True))
    backend: str = _recorded(
        "cpp",
        label="masking backend",
        choices=BACKEND_NAMES,
        help_text="masking implementation (default cpp, the compiled core)",
    )
    mode: str = _recorded(
        "delete",
        restart="--mode",
        label="mode",
        choices=("delete", "keep"),
        help_text="delete one band (default) or keep only that band",
    )
    domain: str = _recorded(
        "pixel",
        restart="--domain",
        label="domain",
        choices=("pixel", "normalised"),
        help_text="mask raw pixels (default) or model-normalised values",
    )
    clip: bool = _recorded(
        False,
        restart="--clip",
        label="clip",
        action="store_true",
        help_text="clip masked pixels to 0..255",
    )
    padding: str = _recorded(
        DEFAULT_PADDING,
        restart="--padding",
        mask=False,
        label="alignment padding",
        unrecorded="black",  # dlib's and OpenCV's own black border
        choices=PADDINGS,
        help_text="what fills the part of a re-cut crop beyond its photo (dlib's 150 chip cut "
        "from a tight 112 crop reaches beyond it): edge (repeat the edge pixels), reflect "
        f"(mirror the photo) or black; default {DEFAULT_PADDING}, the one that disturbs the "
        "band energies least. Recorded with the results; a resumed run must use the same. "
        "Inputs of the model's input size are not re-cut",
    )
    planner: str = _recorded(
        "measure",
        restart="--planner",
        label="FFTW planner",
        unrecorded="measure",
        choices=PLANNERS,
        help_text="FFTW planning effort of the cpp and pyfftw backends (default measure): "
        "estimate plans at once, patient and exhaustive search longer for faster plans. "
        "Plans may round the last bit differently, so it is recorded with the results and "
        "a resumed run must use the same",
    )
    schedule: BandSchedule = dataclasses.field(  # an int k or None given: rings, resolved below
        default=None,  # type: ignore[assignment]  # None means DEFAULT_BANDS (__post_init__)
        metadata=_meta(provenance=True, restart="--bands/--schedule", mask=True, special=True),
    )
    memory_budget: int = dataclasses.field(  # bytes; "512MB", "1GB" given: parsed below
        default=None,  # type: ignore[assignment]  # None: $FREQXFR_MEMORY_BUDGET, else 1 GB
        metadata=_meta(
            cli={
                "type": _cli_memory_size,
                "metavar": "SIZE",
                "help": "about how much memory the process may hold while explaining (e.g. "
                "512MB, 2GB; default $FREQXFR_MEMORY_BUDGET, else 1GB): model calls, batch "
                "buffers and lanes are sized to fit. Results do not depend on it; a smaller "
                "budget runs smaller, slower batches",
            },
        ),
    )
    max_batch: int | None = dataclasses.field(default=None)  # None: from memory_budget
    threads: int | None = dataclasses.field(default=None)
    regions: Any = dataclasses.field(default=None, metadata=_meta(special=True))

    def __post_init__(self) -> None:
        # Refused here, before a model loads.
        check_padding(self.padding)
        if self.mode not in ("delete", "keep"):
            raise InputError(f"mode must be 'delete' or 'keep', got {self.mode!r}")
        if self.planner not in PLANNERS:
            raise InputError(f"planner must be one of {', '.join(PLANNERS)}, got {self.planner!r}")
        schedule = DEFAULT_BANDS if self.schedule is None else self.schedule
        if isinstance(schedule, int) and not isinstance(schedule, bool):
            schedule = BandSchedule.rings(schedule)
        object.__setattr__(self, "schedule", schedule)
        object.__setattr__(self, "clip", bool(self.clip))
        object.__setattr__(self, "memory_budget", _budget(self.memory_budget))
        if self.max_batch is not None:
            if isinstance(self.max_batch, bool) or int(self.max_batch) < 1:
                raise InputError(f"max_batch must be a positive integer, got {self.max_batch!r}")
            object.__setattr__(self, "max_batch", int(self.max_batch))

    @classmethod
    def of(cls, *positional: Any, base: ExplainerConfig | None = None, **settings: Any):
        """A config from :data:`POSITIONAL` arguments and keyword settings, over ``base``."""
        if len(positional) > len(POSITIONAL):
            raise TypeError(f"at most {len(POSITIONAL)} settings by position ({POSITIONAL})")
        given = dict(zip(POSITIONAL, positional, strict=False))
        twice = set(given) & set(settings)
        if twice:
            raise TypeError(f"setting given twice: {', '.join(sorted(twice))}")
        given.update(settings)
        if base is None:
            return cls(**given)
        return dataclasses.replace(base, **given) if given else base

    def replace(self, **changes: Any) -> ExplainerConfig:
        """This config with ``changes`` (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    # ---- what the field list derives ----

    def mask_key(self, region_weights: bytes | None) -> tuple:
        """What makes two explainers' masking the same (the engine masks their pairs together)."""
        return (*(getattr(self, f.name) for f in fields("mask")), region_weights)

    def provenance(self, model_info: Mapping[str, Any], bands: Any) -> dict[str, Any]:
        """The body of :meth:`Explainer.settings` (its keys: :data:`SETTINGS_KEYS`)."""
        out: dict[str, Any] = {"freqxfr_version": __version__}
        for f in fields("provenance"):
            if f.name == "model":
                out["model"] = dict(model_info)
            elif f.name == "schedule":
                out["schedule"] = self.schedule.to_dict()
                out["bands"] = [band.to_dict() for band in bands]
            else:
                out[f.name] = getattr(self, f.name)
        return out

    def restart_settings(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        """The settings a resumed run must match, named by their options (the model aside:
        the run folder names it by its file's digest), from :meth:`Explainer.settings`."""
        out: dict[str, Any] = {}
        for f in fields("restart"):
            if f.name == "schedule":
                schedule = settings["schedule"]
                out[f.metadata["restart"]] = {
                    "kind": schedule["kind"],
                    "bands": schedule["n_bands"],
                    "sectors": schedule["sectors"],
                    "edges": schedule["edges"],
                }
            else:
                out[f.metadata["restart"]] = settings[f.name]
        return out

    @classmethod
    def cli_options(cls) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(option, argparse arguments)`` of each setting with a plain command-line option."""
        for f in fields("cli"):
            yield option_name(f.name), {"default": f.default, **f.metadata["cli"]}

    @classmethod
    def from_cli(cls, args: Any, **special: Any) -> ExplainerConfig:
        """The config of parsed command-line arguments (``special``: model, schedule, regions)."""
        given = {f.name: getattr(args, f.name) for f in fields("cli") if hasattr(args, f.name)}
        return cls(**given, **special)


def fields(role: str) -> list[dataclasses.Field]:
    """The fields of :class:`ExplainerConfig` whose metadata has ``role`` set, in order."""
    return [f for f in dataclasses.fields(ExplainerConfig) if f.metadata.get(role)]


def field_names() -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(ExplainerConfig))


def unrecorded_settings() -> dict[str, tuple[str, Any]]:
    """Restart option → (its label, the value an older freqxfr used without recording it)."""
    return {
        f.metadata["restart"]: (f.metadata["label"], f.metadata["unrecorded"])
        for f in fields("unrecorded")
    }


def option_name(name: str) -> str:
    """The command-line option of a setting: ``max_batch`` → ``--max-batch``."""
    return "--" + name.replace("_", "-")


def provenance_labels() -> dict[str, str]:
    """Setting → its name in a report's provenance table (the settings keys, model aside)."""
    return {f.name: f.metadata["label"] for f in fields("provenance") if f.metadata["label"]}


def _settings_keys() -> tuple[str, ...]:
    keys = ["freqxfr_version"]
    for f in fields("provenance"):
        keys += ["schedule", "bands"] if f.name == "schedule" else [f.name]
    return tuple(keys)


#: The keys of :meth:`Explainer.settings`: the provenance every explanation and run file carries.
SETTINGS_KEYS = _settings_keys()
