"""The README's Python example runs as written."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[:4] == ["fused (torch's lstm kernel)", "['layer_norm']", "autograd", "True"]
    assert out[4].startswith("autograd (zoneout, transition_depth run in the cell's own step")
    assert out[5].startswith("IndRNNCell does not support layer_norm")
