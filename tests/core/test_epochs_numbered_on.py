"""``EpochsNumberedOn``: a training that continues another reports its epochs after it."""

from __future__ import annotations

import pytest

from napari_mesoscale.progress import Cancelled, EpochsNumberedOn, Progress


def test_epochs_are_numbered_on_through_stages_and_cancel_still_stops() -> None:
    reports: list[dict] = []
    whole = Progress(reports.append)
    after = EpochsNumberedOn(whole.stage(0.5, 1.0, "moves reverted"), offset=60)
    after.report(0.0, "epoch 1/10", epoch=0, epochs=10)
    after.stage(0.5, 1.0, "inner").report(1.0, "epoch 10/10", epoch=9)
    after.report(0.5, "no epoch here")
    assert [r.get("epoch") for r in reports] == [60, 69, None]
    assert [r["fraction"] for r in reports] == [0.5, 1.0, 0.75]
    assert reports[0]["message"] == "moves reverted: epoch 1/10"
    assert reports[1]["message"] == "moves reverted: inner: epoch 10/10"

    stopping = EpochsNumberedOn(Progress(lambda info: False), offset=3)
    with pytest.raises(Cancelled):
        stopping.report(0.1, epoch=0)
