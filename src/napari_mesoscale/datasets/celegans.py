"""The *C. elegans* nervous system from installed data packages, as tidy tables keyed by name.

Sources (read from the installed packages, never copied into this repository; their licences
differ from ours):

- ``c302`` (OpenWorm, MIT): soma positions (µm) of the 302 neurons, segment 0 of
  ``NeuroML2/<name>.cell.nml``, and a functional class from the cell's notes;
- ``cect`` (MIT): pre-parsed connectomes in ``cache/*.json`` — White et al. 1986, Varshney et
  al. 2011, Cook et al. 2019 (hermaphrodite, male) and Witvliet et al. 2021 (8 developmental
  stages); chemical synapses and gap junctions are kept apart;
- ``wormneuroatlas`` (GPLv3; cite Randi et al. 2023, White et al. 1986, Witvliet et al. 2021):
  ``data/funatlas.h5``, the signal-propagation atlas of Randi et al. 2023 for wild type
  (``wt``) and unc-31 mutants (``unc31``), arrays indexed [responder, stimulated].

Install them without their own (heavy) dependencies::

    pip install --no-deps wormneuroatlas c302 cect && pip install h5py

Names are reconciled to the c302 spelling: the atlas stores names in 5 characters and calls
the two AWC neurons AWCOFF ("AWCOF") and AWCON, which are AWCL and AWCR (the convention of
wormneuroatlas); zero-padded numbers (``VD01``) lose their padding. Cells that are not one of
the 302 neurons (muscles, glia, pharyngeal cells) are dropped from the connectomes.
"""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

INSTALL_COMMAND = "pip install --no-deps wormneuroatlas c302 cect && pip install h5py"
DATA_PACKAGES = ("wormneuroatlas", "c302", "cect")

#: Connectome names → cect cache files.
CONNECTOMES: dict[str, str] = {
    "white_1986": "White_whole",
    "varshney_2011": "VarshneyDataReader",
    "cook_2019": "Cook2019HermReader",
    "cook_2019_male": "Cook2019MaleReader",
    **{f"witvliet_2021_{stage}": f"WitvlietDataReader{stage}" for stage in range(1, 9)},
}
#: The Witvliet et al. 2021 developmental series, L1 (birth) to adult.
WITVLIET_SERIES = tuple(f"witvliet_2021_{stage}" for stage in range(1, 9))
STRAINS = ("wt", "unc31")

_ALIASES = {"AWCOF": "AWCL", "AWCOFF": "AWCL", "AWCON": "AWCR"}
_CLASS_FROM_NOTES = {
    "SensoryNeuron": "sensory",
    "PolymodalNeuron": "polymodal",
    "Interneuron": "inter",
    "Motor Neuron": "motor",
    "NeurUnkFunc": "unknown",
}
_CONNECTION_KIND = {"Generic_CS": "chemical", "Generic_GJ": "electrical"}


class MissingDataPackageError(ImportError):
    """A data package of the ``worm`` extra is not installed."""


def data_dir(package: str) -> Path:
    """Folder of an installed data package, found without importing it.

    Raises
    ------
    MissingDataPackageError
        The package is not installed; the message gives the pip command.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDataPackageError(
            f"The C. elegans data need the package {package!r}, which is not installed. "
            f"Install the worm data with: {INSTALL_COMMAND}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def canonical_name(name: str) -> str:
    """The c302 spelling of a neuron name from any of the sources (AWCOF → AWCL, VD01 → VD1)."""
    name = str(name).strip()
    name = _ALIASES.get(name.upper(), name)
    return re.sub(r"^([A-Z]+)0+(\d+)$", r"\1\2", name)


def homologue(name: str, names: set[str] | frozenset[str]) -> str | None:
    """The left/right partner of a neuron (AVAL → AVAR), or None when it has none."""
    if len(name) > 2 and name[-1] in "LR":
        partner = name[:-1] + ("R" if name[-1] == "L" else "L")
        if partner in names:
            return partner
    return None


def _soma(path: Path) -> tuple[float, float, float]:
    text = path.read_text()
    match = re.search(r'<segment id="0"[^>]*>\s*<proximal ([^/]*)/>', text)
    if match is None:
        raise ValueError(f"{path.name}: no soma segment (segment id 0) found.")
    coords = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
    return float(coords["z"]), float(coords["y"]), float(coords["x"])


@lru_cache(maxsize=1)
def _neurons_cached() -> pd.DataFrame:
    folder = data_dir("c302") / "NeuroML2"
    rows = []
    for path in sorted(folder.glob("*.cell.nml")):
        notes = re.search(r"<notes>\s*(.*?)\s*</notes>", path.read_text(), re.S)
        kind = _CLASS_FROM_NOTES.get(notes.group(1) if notes else "", None)
        if kind is None:  # the one body-wall muscle cell (MDL08)
            continue
        rows.append((path.name.removesuffix(".cell.nml"), *_soma(path), kind))
    table = pd.DataFrame(rows, columns=["id", "z", "y", "x", "neuron_class"])
    names = frozenset(table["id"])
    table["homologue"] = [homologue(n, names) or "" for n in table["id"]]
    table["cell_type"] = [
        n[:-1] if h else n for n, h in zip(table["id"], table["homologue"], strict=True)
    ]
    return table


def neurons() -> pd.DataFrame:
    """The 302 neurons: ``id`` (name), ``z, y, x`` (µm, c302 soma positions),
    ``neuron_class`` (sensory, polymodal, inter, motor, unknown), ``homologue`` (left/right
    partner or ""), ``cell_type`` (the name without its L/R side)."""
    return _neurons_cached().copy()


@lru_cache(maxsize=16)
def _connectome_cached(source: str) -> pd.DataFrame:
    if source not in CONNECTOMES:
        raise ValueError(f"Unknown connectome {source!r}; choose one of {sorted(CONNECTOMES)}.")
    path = data_dir("cect") / "cache" / f"{CONNECTOMES[source]}.json"
    data = json.loads(path.read_text())
    names = np.array([canonical_name(n) for n in data["nodes"]])
    known = np.isin(names, _neurons_cached()["id"].to_numpy())
    frames = []
    for key, kind in _CONNECTION_KIND.items():
        matrix = np.asarray(data["connections"].get(key, []), dtype=float)
        if matrix.size == 0:
            continue
        pre, post = np.nonzero((matrix > 0) & known[:, None] & known[None, :])
        frames.append(
            pd.DataFrame(
                {
                    "pre": names[pre],
                    "post": names[post],
                    "type": kind,
                    "synapses": matrix[pre, post],
                }
            )
        )
    table = pd.concat(frames, ignore_index=True)
    return table.groupby(["pre", "post", "type"], as_index=False)["synapses"].sum()


def connectome(source: str = "white_1986", kind: str | None = None) -> pd.DataFrame:
    """One published connectome as a tidy table.

    Parameters
    ----------
    source : str
        A key of :data:`CONNECTOMES` (``white_1986``, ``varshney_2011``, ``cook_2019``,
        ``cook_2019_male``, ``witvliet_2021_1`` … ``witvliet_2021_8``).
    kind : {"chemical", "electrical"}, optional
        Keep one kind of connection; None keeps both (told apart by the ``type`` column).

    Returns
    -------
    DataFrame
        ``pre, post, type, synapses`` (synapse count, or cect's weight for gap junctions),
        neurons only, names as in :func:`neurons`. Gap junctions appear in both directions
        when the source lists them so.
    """
    table = _connectome_cached(source)
    if kind is not None:
        if kind not in ("chemical", "electrical"):
            raise ValueError(f"kind must be 'chemical', 'electrical' or None; got {kind!r}.")
        table = table[table["type"] == kind].reset_index(drop=True)
    return table.copy()


def _h5py():
    try:
        import h5py
    except ImportError:
        raise MissingDataPackageError(
            f"Reading the signal-propagation atlas needs h5py. Install it with: {INSTALL_COMMAND}"
        ) from None
    return h5py


def _kernel_terms(values: np.ndarray) -> np.ndarray:
    """(k, 4) rows (g, factor, power_t, branch) without the zero-factor placeholders."""
    terms = np.asarray(values, dtype=float).reshape(-1, 4)
    return terms[terms[:, 1] != 0]


@lru_cache(maxsize=2)
def _atlas_cached(strain: str) -> pd.DataFrame:
    if strain not in STRAINS:
        raise ValueError(f"strain must be one of {STRAINS}; got {strain!r}.")
    h5py = _h5py()
    with h5py.File(data_dir("wormneuroatlas") / "data" / "funatlas.h5", "r") as handle:
        names = np.array([canonical_name(n.decode()) for n in handle["neuron_ids"][:]])
        group = handle[strain]
        counts = group["occ1"][:]
        responder, stimulated = np.nonzero(counts > 0)
        kernels = group["kernels"][:]
        amplitudes = group["dFF_all"][:]
        table = pd.DataFrame(
            {
                "responder": names[responder],
                "stimulated": names[stimulated],
                "dff": group["dFF"][:][responder, stimulated],
                "q": group["q"][:][responder, stimulated],
                "q_eq": group["q_eq"][:][responder, stimulated],
                "n_trials": counts[responder, stimulated],
            }
        )
        table["kernel"] = [
            _kernel_terms(kernels[i, j]) for i, j in zip(responder, stimulated, strict=True)
        ]
        table["dff_trials"] = [
            np.asarray(amplitudes[i, j], float) for i, j in zip(responder, stimulated, strict=True)
        ]
    return table


def atlas(strain: str = "wt") -> pd.DataFrame:
    """The signal-propagation atlas of Randi et al. 2023 as a tidy table of observed pairs.

    Parameters
    ----------
    strain : {"wt", "unc31"}
        Wild type, or unc-31 mutants (dense-core-vesicle release, i.e. most extrasynaptic
        peptidergic signalling, reduced).

    Returns
    -------
    DataFrame
        One row per (responder, stimulated) pair observed at least once: ``dff`` (mean
        response ΔF/F over trials), ``q`` (significance of a response), ``q_eq``
        (equivalence test: significance of *no* response), ``n_trials`` (times the pair was
        observed, the atlas's ``occ1``), ``kernel`` ((k, 4)
        array of terms (g, factor, power_t, branch): kernel(t) = Σ factor·t^power·e^(−g·t),
        see :func:`kernel_response`) and ``dff_trials`` (single-trial amplitudes of the trials
        with a usable response window, at most ``n_trials``).
        ``dff`` is NaN for a few pairs observed without a usable response window.
    """
    return _atlas_cached(strain).copy()


def kernel_response(kernel: np.ndarray, times_s: np.ndarray) -> np.ndarray:
    """Evaluate a fitted response kernel (rows g, factor, power_t, branch) at ``times_s`` ≥ 0."""
    times_s = np.asarray(times_s, dtype=float)
    out = np.zeros_like(times_s)
    for g, factor, power, _branch in np.asarray(kernel, float).reshape(-1, 4):
        out += factor * times_s**power * np.exp(-g * times_s)
    return out


def response_to(stimulated: str, strain: str = "wt") -> pd.Series:
    """Measured mean response (ΔF/F) of every responder to one stimulated neuron, by name."""
    table = _atlas_cached(strain)
    name = canonical_name(stimulated)
    rows = table[table["stimulated"] == name]
    if rows.empty:
        raise ValueError(f"{stimulated!r} was never stimulated in the {strain} atlas.")
    return rows.set_index("responder")["dff"]


def response_matrix(strain: str = "wt", column: str = "dff") -> pd.DataFrame:
    """The atlas as a [responder, stimulated] matrix over the 302 neurons of :func:`neurons`.

    Parameters
    ----------
    strain : {"wt", "unc31"}
    column : str
        A numeric column of :func:`atlas` (``dff``, ``q``, ``q_eq``, ``n_trials``).

    Returns
    -------
    DataFrame
        Indexed by responder name, one column per neuron as stimulated (in
        :func:`neurons`' order); NaN for pairs never observed (or without a usable ``dff``)
        and on the diagonal.
    """
    names = _neurons_cached()["id"].tolist()
    index = {n: k for k, n in enumerate(names)}
    table = _atlas_cached(strain)
    table = table[np.isfinite(table["dff"])]
    matrix = np.full((len(names), len(names)), np.nan)
    matrix[table["responder"].map(index), table["stimulated"].map(index)] = table[column]
    np.fill_diagonal(matrix, np.nan)
    return pd.DataFrame(matrix, index=pd.Index(names, name="responder"), columns=names)


#: Response fields fitted by :func:`predict_response`: (strain, neuron left out or None) → fit.
_RESPONSE_FIELDS: dict[tuple[str, str | None], object] = {}


def _field_key(stimulated: str | None, strain: str) -> tuple[str, str | None]:
    """(strain, neuron left out of the fit): ``stimulated`` when the atlas has a column of it
    that the fit would train on, else None (one fit per strain for every such neuron)."""
    if strain not in STRAINS:
        raise ValueError(f"strain must be one of {STRAINS}; got {strain!r}.")
    if stimulated is None:
        return strain, None
    from napari_mesoscale.model.response_field import ResponseFieldParams

    name = canonical_name(stimulated)
    names = set(_neurons_cached()["id"])
    if name not in names:
        raise ValueError(f"{stimulated!r} is not one of the 302 neurons.")
    observed = _observed_responders(name, strain, names)
    return strain, name if observed >= ResponseFieldParams().min_responders else None


def _observed_responders(name: str, strain: str, names: set[str]) -> int:
    """Non-NaN entries of :func:`response_matrix`'s column ``name``, counted from the atlas
    table without building the 302 × 302 matrix: distinct responders among the 302 neurons
    with a finite ``dff``, the diagonal excluded."""
    table = _atlas_cached(strain)
    rows = table[(table["stimulated"] == name) & np.isfinite(table["dff"])]
    responders = rows["responder"]
    return int(responders[responders.isin(names) & (responders != name)].nunique())


def response_field(stimulated: str | None = None, strain: str = "wt", callback=None):
    """The response field (:func:`napari_mesoscale.model.fit_response_field`, default
    parameters, no connectome-linear component) fitted on every stimulated column of the
    atlas but ``stimulated``'s own; cached per (strain, left-out neuron)."""
    from napari_mesoscale.model.response_field import fit_response_field

    key = _field_key(stimulated, strain)
    if key not in _RESPONSE_FIELDS:
        _RESPONSE_FIELDS[key] = fit_response_field(
            response_matrix(strain),
            _neurons_cached(),
            exclude=[key[1]] if key[1] else [],
            callback=callback,
        )
    return _RESPONSE_FIELDS[key]


def response_field_cached(stimulated: str, strain: str = "wt") -> bool:
    """Whether :func:`predict_response` for ``stimulated`` needs no fit (it is quick)."""
    return _field_key(stimulated, strain) in _RESPONSE_FIELDS


def predict_response(stimulated: str, strain: str = "wt", *, callback=None) -> pd.Series:
    """What would stimulating ``stimulated`` do? The predicted response (ΔF/F) of every neuron.

    A response field (:mod:`napari_mesoscale.model.response_field`: basis kernels of the 3D
    offset between stimulated somata, mixed with the reciprocal responses, trained
    leave-one-stimulated-out) fitted on the atlas's stimulated neurons, *without*
    ``stimulated``'s own column when the atlas has one, so the prediction never saw the
    measurement it can be compared with (:func:`response_to`). The first call per (strain,
    neuron) fits (about 20 CPU seconds on wild type); later calls reuse the fit, and neurons
    the atlas never stimulated share one fit per strain.

    Parameters
    ----------
    stimulated : str
        A neuron name (any spelling :func:`canonical_name` reads).
    strain : {"wt", "unc31"}
    callback : callable, optional
        Progress (:mod:`napari_mesoscale.progress`) of the fit, if one is needed.

    Returns
    -------
    Series
        ``predicted_response`` indexed by neuron name (the 302 of :func:`neurons`); NaN for
        ``stimulated`` itself.
    """
    name = canonical_name(stimulated)
    fit = response_field(name, strain, callback=callback)
    return fit.predict(name)[name].rename("predicted_response").rename_axis("responder")


def synapse_table(source: str = "white_1986", kind: str = "chemical") -> pd.DataFrame:
    """A connectome in the form :meth:`Connectome.from_tables` reads: ``pre, post, weight``
    (synapse count), the synapse placed halfway between the two somata."""
    table = connectome(source, kind)
    return table.rename(columns={"synapses": "weight"})[["pre", "post", "weight"]]


def to_connectome(source: str = "white_1986", kind: str = "chemical"):
    """A :class:`napari_mesoscale.connectome.Connectome` of the 302 neurons (all of them,
    neurons absent from ``source`` without edges); adjacency = synapse counts pre → post."""
    from napari_mesoscale.connectome import Connectome

    return Connectome.from_tables(neurons(), synapse_table(source, kind), value="weight")


@dataclass(frozen=True)
class CElegans:
    """The worm in one object: see :func:`load_celegans`."""

    neurons: pd.DataFrame
    chemical: pd.DataFrame
    electrical: pd.DataFrame
    atlas: pd.DataFrame
    source: str
    strain: str


def load_celegans(source: str = "white_1986", strain: str = "wt") -> CElegans:
    """Neurons, one connectome (chemical and gap junctions apart) and the atlas of one strain.

    Parameters
    ----------
    source : str
        Connectome, a key of :data:`CONNECTOMES`.
    strain : {"wt", "unc31"}
        Strain of the signal-propagation atlas.

    Returns
    -------
    CElegans
        ``neurons`` (see :func:`neurons`), ``chemical`` and ``electrical`` (see
        :func:`connectome`), ``atlas`` (see :func:`atlas`).

    Raises
    ------
    MissingDataPackageError
        A data package is missing; the message gives the pip command.
    """
    for package in DATA_PACKAGES:
        data_dir(package)
    return CElegans(
        neurons=neurons(),
        chemical=connectome(source, "chemical"),
        electrical=connectome(source, "electrical"),
        atlas=atlas(strain),
        source=source,
        strain=strain,
    )


def stimulation_trials(
    names: list[str] | np.ndarray,
    strain: str = "wt",
    *,
    stimulated: list[str] | None = None,
    frames_per_trial: int = 8,
    rise_frames: float = 1.0,
    response_lag_frames: int = 0,
    mask_rest: bool = False,
    pulse: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The atlas as a (T, N) activity movie: one trial per stimulated neuron.

    Each trial starts at rest (frame 0: ΔF/F = 0 for every neuron, the baseline by
    definition), then the stimulated neuron is held at ``pulse`` (the optogenetic pulse) and every
    observed responder relaxes towards its measured mean response ``dff`` with time constant
    ``rise_frames``, starting ``response_lag_frames`` frames after the pulse (until then it
    stays at rest); responders never observed for that stimulated neuron are NaN (masked in a
    fit's loss). The shape of the rise is a modelling choice; its plateau is the measurement.

    With ``response_lag_frames=0`` the responders rise in the same frame as the pulse, so a
    one-step model cannot tell from frame t which neuron drives frame t+1's rise; a lag of one
    frame or more puts the stimulated neuron alone in the state one step before the responders
    move (what a model has to learn to predict the response to a neuron it never saw driven).

    Parameters
    ----------
    names : sequence of str
        Neuron order of the columns (e.g. ``neurons()["id"]``).
    strain : {"wt", "unc31"}
    stimulated : list of str, optional
        Stimulated neurons, one trial each in this order; default every stimulated neuron of
        the atlas that is in ``names``.
    frames_per_trial, rise_frames : int, float
        Trial length (frames) and rise time constant (frames).
    response_lag_frames : int
        Frames between the pulse's onset and the responders' first move (0 to
        ``frames_per_trial - 2``).
    pulse : float
        Activity of the stimulated neuron while it is driven (the atlas does not report it;
        1 by default, far above a typical response, which is a few hundredths of ΔF/F).
    mask_rest : bool
        Leave the rest frame NaN (masked) for the neurons observed in the trial, so that a
        one-step fit is not asked to predict the jump from the previous trial's last frame back
        to rest (a reset no state can foresee); their rest then enters a fit's input as the
        training mean.

    Returns
    -------
    activity : ndarray (T, N)
    stimulus : ndarray (T, 1)
        1 while a neuron is stimulated, else 0.
    stimulated : list of str
        The stimulated neuron of each trial.
    """
    if not 0 <= response_lag_frames <= frames_per_trial - 2:
        raise ValueError(
            f"response_lag_frames must lie between 0 and frames_per_trial - 2 = "
            f"{frames_per_trial - 2}; got {response_lag_frames}."
        )
    names = [str(n) for n in names]
    column = {name: i for i, name in enumerate(names)}
    table = _atlas_cached(strain)
    table = table[table["responder"].isin(column) & np.isfinite(table["dff"])]
    if stimulated is None:
        stimulated = sorted(set(table["stimulated"]) & set(column))
    steps = np.arange(frames_per_trial)
    since = steps - response_lag_frames
    rise = np.where(since > 0, 1.0 - np.exp(-since / rise_frames), 0.0)
    activity = np.full((len(stimulated) * frames_per_trial, len(names)), np.nan)
    stimulus = np.zeros((activity.shape[0], 1))
    by_stimulated = dict(tuple(table.groupby("stimulated")))
    for trial, name in enumerate(stimulated):
        rows = slice(trial * frames_per_trial, (trial + 1) * frames_per_trial)
        block = activity[rows]
        block[0] = 0.0
        pairs = by_stimulated.get(name)
        if pairs is not None:
            cols = pairs["responder"].map(column).to_numpy()
            block[:, cols] = rise[:, None] * pairs["dff"].to_numpy()[None, :]
        block[:, column[name]] = pulse * (steps > 0)
        if mask_rest:
            observed = np.isfinite(block[1])
            block[0, observed] = np.nan
        stimulus[rows, 0] = (steps > 0).astype(float)
    return activity, stimulus, list(stimulated)
