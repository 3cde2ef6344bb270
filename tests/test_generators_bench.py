"""benchmarks/generators.py: the digit world a world preset scores and records (``--data-config``)."""
import pytest

from bench_loader import load_benchmark


def test_world_presets_read_the_world_of_data_config():
    gen = load_benchmark("generators")
    default = gen.world_data(None)  # the world teacher's preset: the slots layout
    assert default == gen.world_data("configs/world/teacher.yaml")
    assert (default.dataset, default.world_layout, default.world_slots) == ("world", "slots", 2)
    assert gen.world_data(None, "configs/world/reward_attribute.yaml").world_train_size == 30000  # another default
    with pytest.raises(SystemExit, match="not the digit world"):
        gen.world_data("configs/mnist/teacher.yaml")
