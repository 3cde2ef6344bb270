"""benchmarks/generators.py: the digit world a world preset scores and records (``--data-config``)."""
import pytest

from bench_loader import load_benchmark


def test_world_presets_read_the_world_of_data_config():
    gen = load_benchmark("generators")
    free = gen.world_data(None)
    slots = gen.world_data("configs/world_slots/teacher.yaml")
    assert free.dataset == slots.dataset == "world"
    assert (free.world_layout, slots.world_layout, slots.world_slots) == ("free", "slots", 2)
    with pytest.raises(SystemExit, match="not the digit world"):
        gen.world_data("configs/mnist/teacher.yaml")
