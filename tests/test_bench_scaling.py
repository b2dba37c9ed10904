"""lawful bench --scaling: slopes fitted on log-log axes, checked on costs of known growth."""

import json
import math

import pytest

from lawful.bench.scaling import expected_slope, fitted_slope
from lawful.cli import main


def test_the_fitted_slope_of_a_power_law_is_its_exponent():
    sizes = [100, 200, 400, 800, 1600]
    assert fitted_slope(sizes, [3e-6 * n**1.5 for n in sizes]) == pytest.approx(1.5, abs=1e-12)
    # Fixed per-call costs bend the small sizes; the upper half alone decides the slope.
    bent = [1e-3 + 1e-9 * n**2 for n in sizes]
    assert fitted_slope(sizes, bent) > fitted_slope(sizes[:3], bent[:3])


def test_expected_slopes_of_the_complexities():
    sizes = [128 * 2**k for k in range(7)]
    assert expected_slope("n", sizes) == pytest.approx(1.0, abs=1e-12)
    assert expected_slope("n^2", sizes) == pytest.approx(2.0, abs=1e-12)
    # n log n over 1024..8192: 1 + 1 / ln(n) at about the upper half's middle.
    slope = expected_slope("n log n", sizes)
    assert 1 + 1 / math.log(8192) < slope < 1 + 1 / math.log(1024)


def test_bad_series_are_named():
    with pytest.raises(ValueError, match="two or more"):
        fitted_slope([10], [1.0])
    with pytest.raises(ValueError, match="positive"):
        fitted_slope([10, 20], [0.0, 1.0])


def test_the_command_writes_every_series_with_its_slopes(tmp_path, capsys):
    out = tmp_path / "scaling"
    assert main(["bench", "--scaling", "--quick", "--out", str(out)]) == 0
    series = json.loads((out / "scaling.json").read_text())
    names = [one["name"] for one in series]
    assert names[0] == "conservation update" and names[-1].startswith("ANP training step")
    assert sum(name.startswith("BOON") for name in names) == 2
    assert sum(name.startswith("FNO") for name in names) == 2
    for one in series:
        assert len(one["sizes"]) == len(one["seconds"]) and min(one["seconds"]) > 0
        assert one["slope"] == pytest.approx(fitted_slope(one["sizes"], one["seconds"]))
        assert one["expected_slope"] == pytest.approx(
            expected_slope(one["complexity"], one["sizes"])
        )
        # BOON's steps alternated with the FNO's at each size: one ratio per size.
        if one["name"].startswith("BOON"):
            assert len(one["ratios"]) == len(one["sizes"]) and min(one["ratios"]) > 0
        else:
            assert one["ratios"] is None
    assert (out / "scaling.png").stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert "conservation update" in printed
    assert printed.count("its step over the FNO's, size by size") == 2
    for one in series:  # the printed ratios are the recorded ones
        if one["ratios"] is not None:
            shown = " ".join(f"{ratio:.2f}" for ratio in one["ratios"])
            assert f"its step over the FNO's, size by size: {shown}\n" in printed
