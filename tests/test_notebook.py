"""Notebooks: a real Jupyter kernel runs flows defined in cells, and survives Ctrl-C (issue 5)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
jupyter_client = pytest.importorskip("jupyter_client")

NOTEBOOK = Path(__file__).parent / "notebooks" / "flow.ipynb"
ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.timeout(180), pytest.mark.foreign_fds]


def test_the_notebook_runs_on_every_backend_and_start_method(tmp_path: Path) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=150, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    )
    client.execute()
    outputs = {i: cell.get("outputs", []) for i, cell in enumerate(notebook.cells)}
    assert "image/svg+xml" in outputs[1][0]["data"]  # the flow draws itself
    assert "all backends ok" in outputs[2][0]["text"]
    assert "items/s" in outputs[3][0]["data"]["image/svg+xml"]  # a run shows its rates
    assert "notebook errors, logs and warnings ok" in outputs[5][0]["text"]


def _execute(client: Any, code: str, timeout: float = 60, again: bool = False) -> tuple[str, list[str]]:
    """Run ``code``; its reply status and what it printed.

    ``again``: run it a second time if a stray ``KeyboardInterrupt`` broke it.
    ipykernel 7 sometimes raises a kernel interrupt twice, the second time in
    the next cell, whatever the cell runs (seen with a plain ``Event.wait``
    loop and no streamflow at all).
    """
    msg_id = client.execute(code)
    printed, errors = [], []
    while True:
        message = client.get_iopub_msg(timeout=timeout)
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        if message["msg_type"] == "stream":
            printed.append(message["content"]["text"])
        if message["msg_type"] == "error":
            errors.append(message["content"]["ename"])
        if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
            break
    reply = client.get_shell_msg(timeout=timeout)
    stray = "KeyboardInterrupt" in (reply["content"].get("ename"), *errors)
    if again and stray:
        return _execute(client, code, timeout)
    return reply["content"]["status"], printed


@pytest.mark.parametrize("method", ["warm", "fork", "spawn"])
def test_interrupting_the_kernel_stops_the_flow_and_keeps_the_kernel(method: str) -> None:
    manager = jupyter_client.KernelManager(kernel_name="python3")
    manager.start_kernel(cwd=str(ROOT), env={**os.environ, "PYTHONPATH": str(ROOT)})
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        setup = (
            "import psutil, streamflow as sf\n"
            "from collections.abc import Iterable, Iterator\n"
            # A generator is read in the kernel's own process, where what it
            # prints reaches the notebook (a spawned worker's stdout does not).
            "def forever():\n"
            "    i = 0\n"
            "    while True:\n"
            "        if i == 50: print('running', flush=True)\n"
            "        yield i; i += 1\n"
            "@sf.stage(workers=2)\n"
            "def announce(xs: Iterable[int]) -> Iterator[int]:\n"
            "    yield from xs\n"
            "@sf.stage\n"
            "def count(xs: Iterable[int]) -> int:\n"
            "    return sum(1 for _ in xs)\n"
        )
        assert _execute(client, setup)[0] == "ok"
        msg_id = client.execute(f"(sf.source(forever()) | announce | count).run(start_method={method!r})")
        while True:  # wait until the flow is really running
            message = client.get_iopub_msg(timeout=60)
            if message["parent_header"].get("msg_id") == msg_id and message["msg_type"] == "stream":
                if "running" in message["content"]["text"]:
                    break
        manager.interrupt_kernel()
        client.get_shell_msg(timeout=60)
        shown = []  # what the notebook shows for the cell (its reply's status can race: ipykernel)
        while True:
            message = client.get_iopub_msg(timeout=60)
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            if message["msg_type"] == "error":
                shown.append(message["content"]["ename"])
            if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
                break
        assert shown == ["KeyboardInterrupt"]
        status, printed = _execute(
            client,
            again=True,
            code="me = psutil.Process()\n"
            "helpers = ('forkserver', 'resource_tracker', 'streamflow._backends._warm')\n"
            "print(len([c for c in me.children(recursive=True) if c.ppid() != me.pid "
            "or not any(h in ' '.join(c.cmdline()) for h in helpers)]))",
        )
        assert status == "ok" and "".join(printed).strip() == "0"  # no worker survived
        status, printed = _execute(
            client, f"print((sf.source(range(10)) | announce | count).run(start_method={method!r}))", again=True
        )
        assert status == "ok" and "".join(printed).strip() == "10"  # the kernel is usable
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
