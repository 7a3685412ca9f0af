"""Test structures shared by the materials tests."""

from ase.spacegroup import crystal


def itq29():
    # ITQ-29 (pure-silica LTA), Pm-3m, a = 11.8671 Å: the asymmetric unit of RASPA3's test.
    return crystal(
        ["Si", "O", "O", "O"],
        [
            (0.3683, 0.1847, 0.0),
            (0.5, 0.2179, 0.0),
            (0.2939, 0.2939, 0.0),
            (0.3429, 0.1098, 0.1098),
        ],
        spacegroup=221,
        cellpar=[11.8671] * 3 + [90.0] * 3,
    )
