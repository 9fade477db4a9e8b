"""The benchmark command's options (``python -m bench.run``) refused before anything starts."""

from __future__ import annotations

import pytest

from bench.run import main


def test_cluster_without_a_postgresql_store_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--quick", "--cluster"])
    assert exit_.value.code == 2
    assert "--cluster needs --store postgresql" in capsys.readouterr().err
