"""Registries: built-ins, programmatic registration and third-party entry points."""

from __future__ import annotations

import sys
import textwrap

import pytest
from click.testing import CliRunner

from evo_nas.cli.commands import main
from evo_nas_common.registry import UnknownNameError
from ground_truths import GROUND_TRUTHS
from search_spaces import SPACES, get_space
from surrogates import SURROGATES


def test_builtins_are_listed():
    assert "darts_rnn" in SPACES.names()
    assert "random" in SURROGATES.names()
    assert "table" in GROUND_TRUTHS.names()
    out = CliRunner().invoke(main, ["list"]).output
    assert "darts_rnn" in out and "random" in out and "table" in out


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(UnknownNameError, match="unknown search space 'nope'.*darts_rnn"):
        get_space("nope")


def test_programmatic_registration():
    from search_spaces.darts_rnn import DartsRNNSpace

    class TinyDarts(DartsRNNSpace):
        name = "tiny_darts"

        def __init__(self) -> None:
            super().__init__(nodes=2)

    SPACES.register("tiny_darts", TinyDarts)
    try:
        assert "tiny_darts" in SPACES.names()
        assert get_space("tiny_darts").nodes == 2
    finally:
        SPACES.unregister("tiny_darts")
    assert "tiny_darts" not in SPACES.names()


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """A third-party package on sys.path with dist-info entry points, as pip would install it."""
    pkg = tmp_path / "evo_nas_plugin_demo"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        textwrap.dedent(
            """
            from ground_truths.table import TableGroundTruth
            from search_spaces.darts_rnn import DartsRNNSpace
            from surrogates.random_surrogate import RandomSurrogate

            class ThreeNodeSpace(DartsRNNSpace):
                name = "three_nodes"

                def __init__(self, output: str = "all") -> None:
                    super().__init__(nodes=3, output=output)

            class PluginTable(TableGroundTruth):
                pass

            class PluginRandom(RandomSurrogate):
                pass
            """
        )
    )
    info = tmp_path / "evo_nas_plugin_demo-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: evo-nas-plugin-demo\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[evo_nas.search_spaces]\nthree_nodes = evo_nas_plugin_demo:ThreeNodeSpace\n"
        "[evo_nas.ground_truths]\nplugin_table = evo_nas_plugin_demo:PluginTable\n"
        "[evo_nas.surrogates]\nplugin_random = evo_nas_plugin_demo:PluginRandom\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("evo_nas_plugin_demo", None)


def test_entry_point_plugins_are_found_and_usable_by_a_search(installed_plugin, tmp_path):
    assert "three_nodes" in SPACES.names()
    assert "plugin_table" in GROUND_TRUTHS.names() and "plugin_random" in SURROGATES.names()
    space = get_space("three_nodes")
    assert space.nodes == 3
    # and the whole engine accepts them by name
    from evo_nas.search.launch import run_search

    table = tmp_path / "t.csv"
    table.write_text('genotype,objective\n"tanh0 relu1 tanh2",1.0\n"relu0 relu1 relu2",2.0\n')
    best = run_search(
        {
            "name": "plugin",
            "output_dir": str(tmp_path / "runs"),
            "space": "three_nodes",
            "ground_truth": {"name": "plugin_table", "options": {"path": str(table)}},
            "surrogate": "plugin_random",
            "search": {"algorithm": "random", "offspring": 2, "initial": ["tanh0 relu1 tanh2"]},
            "budget": {"evaluations": 5},
        },
        progress=False,
    )
    assert best["describe"] == "tanh0 relu1 tanh2"
