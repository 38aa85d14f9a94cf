"""The napari side: widgets, readers, writers, sample data and core-result → layer conversion.

Nothing here holds science: widgets collect parameters, run one core call in a worker
(:mod:`napari_mesoscale.napari._runner`) and turn its result into layers.
"""


def prefer_mesoscale_readers(*, overwrite: bool = False) -> dict[str, str]:
    """Save napari reader preferences so the plugin opens its formats without asking.

    See :func:`napari_mesoscale.napari._reader.prefer_mesoscale_readers`.
    """
    from napari_mesoscale.napari._reader import prefer_mesoscale_readers as prefer

    return prefer(overwrite=overwrite)


def colour_by_response(
    layer: object, stimulated: str, strain: str | None = None, predicted: bool = False
) -> object:
    """Colour the C. elegans sample's neurons by their measured (or, with ``predicted=True``,
    predicted) response to ``stimulated``.

    The line the README gives for napari's console; see
    :func:`napari_mesoscale.napari._worm_sample.colour_by_response`.
    """
    from napari_mesoscale.napari._worm_sample import colour_by_response as colour

    return colour(layer, stimulated, strain, predicted)
