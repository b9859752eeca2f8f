"""A sweep pools cells that switch power modes by board model: a board runs the modes its
nvpmodel.conf has, and never takes a cell whose mode it lacks."""
from ebedge.measure.board_state import BoardState, PowerMode
from ebedge.remote.sweep import DONE, Ledger, _pools


def facts(model, modes):
    """What `agent info` says of a board in MAXN (0) with these nvpmodel.conf modes."""
    return (BoardState.from_json({"model": model, "nvpmodel": {"name": "MAXN", "id": 0}}),
            [PowerMode.from_json(m) for m in modes])


TX2 = facts("NVIDIA Jetson TX2", [{"id": 0, "name": "MAXN"}, {"id": 1, "name": "MAXQ"},
                                  {"id": 3, "name": "MAXP_CORE_ARM"}])
NANO = facts("NVIDIA Jetson Nano Developer Kit", [{"id": 0, "name": "MAXN"}, {"id": 1, "name": "5W"}])
CELLS = {"c-maxq": {"power_mode": "maxq"}, "c-5w": {"power_mode": "5W"}, "c-id0": {"power_mode": 0},
         "c-plain": {"power_mode": None}}


def test_pools_follow_the_cells_mode_on_boards_that_have_it():
    tx2, nano = _pools(*TX2, cells=CELLS), _pools(*NANO, cells=CELLS)
    assert tx2["c-maxq"] == ["NVIDIA Jetson TX2", "MAXQ (1)"] and tx2["c-5w"] is None
    assert nano["c-5w"] == ["NVIDIA Jetson Nano Developer Kit", "5W (1)"] and nano["c-maxq"] is None
    assert tx2["c-id0"] == ["NVIDIA Jetson TX2", "MAXN (0)"]
    assert tx2["c-plain"] == ["NVIDIA Jetson TX2", "MAXN (0)"]  # no switch: the board's own mode


def test_a_board_takes_only_the_cells_its_modes_allow_and_kinds_stay_apart(tmp_path):
    ledger = Ledger(str(tmp_path / "ledger.json"), "s", list(CELLS))
    tx2, nano = _pools(*TX2, cells=CELLS), _pools(*NANO, cells=CELLS)
    taken = []
    while True:
        cell = ledger.take("tx2", tx2, 2, False)
        if cell is None:
            break
        taken.append(cell)
        ledger.finish(cell, "tx2", True, DONE)
    assert taken == ["c-maxq", "c-id0", "c-plain"]
    assert ledger.open_cells("tx2", tx2, False, 2, {"tx2", "nano"}) is False
    assert ledger.open_cells("nano", nano, False, 2, {"tx2", "nano"}) is True
    assert ledger.take("nano", nano, 2, False) == "c-5w"
    assert ledger.cell("c-5w")["pool"] == ["NVIDIA Jetson Nano Developer Kit", "5W (1)"]
