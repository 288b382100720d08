"""Run the code of the tutorials (docs/tutorials/*.md) as a reader would, in a fresh directory.

Each page's fenced blocks run in order, in one working directory per page:

* ``python`` blocks run in one namespace per page (like one notebook or one ``python`` session);
* a block whose first line is a file name comment (``# lab.toml``, ``# watch.py``, ``% read_run.m``)
  is written to that file instead, for later blocks to use;
* ``console`` blocks run each ``$ command`` in bash with the venv's ``bin`` first on PATH; the lines
  after a command are what the reader sees and must appear in its output, in order (``...`` in a
  line matches anything); a command must exit 0 unless ``$ echo $?`` follows it with its status;
  ``command &`` starts a background job (it is waited for until its shown lines have appeared) and
  ``kill [-INT] %N`` stops job N and waits for it to exit (status 0 expected);
* ``text`` blocks are output the page shows; anything else must be a file or be marked.

A page whose first lines hold ``% tutorial-test: notebook`` runs its Python blocks as the cells of a
notebook, in a real Jupyter kernel (ipykernel, started from this interpreter), not in this process.

A block that cannot run here is marked in the page source, on the line before its fence, with a
MyST comment saying why: ``% tutorial-test: skip: needs a MaiTai on a real serial port``. A block
that needs a program that may be missing says so: ``% tutorial-test: requires Rscript``. A timed run
(``arrowdaq demo --duration 10``) in a block marked ``% tutorial-test: until 40 pm1/power hwp/position``
is stopped with Ctrl-C once its run file has 40 rows of each stream (start-up on a loaded machine can
take longer than the duration a reader waits).

    .venv/bin/python scripts/tutorials.py [PAGE.md ...] [--images docs/images] [--keep DIR]

With ``--images`` the pictures a page shows as ``../images/tutorial-NAME.png`` are copied there from
the ``NAME.png`` its code wrote (so the docs' plots are the tutorials' own output).
"""

from __future__ import annotations

import argparse
import linecache
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PAGES = ROOT / "docs" / "tutorials"
NOTEBOOK = re.compile(r"^%\s*tutorial-test:\s*notebook\b", re.M)
MARKER = re.compile(r"^%\s*tutorial-test:\s*(?P<what>skip|requires|until)\b:?\s*(?P<why>.*)$")
DURATION = re.compile(r"--duration\s+\S+")
FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})\s*(?:\{code-block\}\s*)?(?P<lang>[\w+-]*)")
FILE_COMMENT = re.compile(r"^(?:#|%|//)\s*(?P<path>[\w.-]+(?:/[\w.-]+)*\.\w+)\s*$")
IMAGE = re.compile(r"\.\./images/tutorial-(?P<name>[\w-]+)\.png")
#: Languages that are output or prose, never run.
SHOWN = {"text", "output", ""}
#: How long one command may take (a loaded 2-core machine starts a daemon in ~20 s).
COMMAND_TIMEOUT = 240.0


@dataclass
class Block:
    """One fenced block of a page: its language, body, line in the page and marker."""

    page: Path
    line: int
    lang: str
    body: str
    skip: str | None = None  # the reason given in the page
    requires: str | None = None  # a program that must be on PATH
    until: tuple[int, list[str]] | None = None  # stop the block's timed run once its file has these rows

    @property
    def where(self) -> str:
        return f"{self.page.name}:{self.line}"

    @property
    def file(self) -> str | None:
        """The file this block is the contents of, when its first line names one."""
        first = self.body.split("\n", 1)[0]
        match = FILE_COMMENT.match(first)
        return match.group("path") if match else None


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a MyST page, with the marker on the line before each fence."""
    lines = page.read_text(encoding="utf-8").split("\n")
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, start = opening.group("fence"), i
        j = i + 1
        while j < len(lines) and not (lines[j].startswith(fence) and lines[j].strip() == fence):
            j += 1
        body = "\n".join(line for line in lines[i + 1 : j] if not line.startswith(":"))  # directive options
        block = Block(page, start + 1, opening.group("lang").lower(), body.strip("\n") + "\n")
        k = start - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        marker = MARKER.match(lines[k].strip()) if k >= 0 else None
        if marker:
            why = marker.group("why").strip()
            if marker.group("what") == "skip":
                block.skip = why
            elif marker.group("what") == "until":
                rows, *streams = why.split()
                block.until = (int(rows), streams)
            else:
                block.requires = why.split()[0] if why else None
        found.append(block)
        i = j + 1
    return found


def _pattern(line: str) -> re.Pattern[str]:
    return re.compile(r"\s*" + ".*".join(re.escape(part) for part in line.strip().split("...")) + r"\s*")


def unmatched(expected: list[str], output: str) -> str | None:
    """The first expected line not found (in order) in ``output``, or None when all are."""
    actual = output.splitlines()
    at = 0
    for line in expected:
        if not line.strip() or line.strip() == "...":
            continue
        pattern = _pattern(line)
        while at < len(actual) and not pattern.fullmatch(actual[at]):
            at += 1
        if at == len(actual):
            return line
        at += 1
    return None


@dataclass
class Command:
    text: str
    line: int
    expected: list[str] = field(default_factory=list)


def commands(block: Block) -> list[Command]:
    """The ``$`` commands of a console block with the output lines shown after each."""
    found: list[Command] = []
    lines = block.body.rstrip("\n").split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("$ "):
            text, start = line[2:], i
            while text.endswith("\\") and i + 1 < len(lines):
                i += 1
                text = text[:-1] + " " + lines[i].strip()
            found.append(Command(text.strip(), block.line + 1 + start))
        elif found:
            found[-1].expected.append(line)
        else:
            raise AssertionError(f"{block.where}: output before any '$ ' command: {line!r}")
        i += 1
    return found


class Job:
    """A background command: its output gathered by a thread, so the run can wait on what it printed."""

    def __init__(self, command: str, cwd: Path, env: dict[str, str]) -> None:
        self.command = command
        self.proc = subprocess.Popen(
            ["bash", "-c", command],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.output = ""
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, name=f"job {command}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.output += line
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, expected: list[str], timeout: float) -> None:
        """Until every expected line has been printed; fails if the job exits or the time is up first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while (missing := unmatched(expected, self.output)) is not None:
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(
                        f"`{self.command}` never printed {missing!r} "
                        f"(exit status {self.proc.poll()}); its output:\n{self.output}"
                    )
                self._changed.wait(min(left, 0.5))

    def stop(self, sig: int = signal.SIGINT, timeout: float = COMMAND_TIMEOUT) -> int:
        """Signal the job (its process group) and wait for it to exit; its exit status."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            status = self.proc.wait()
            raise AssertionError(f"`{self.command}` did not stop in {timeout} s; its output:\n{self.output}") from None
        self._reader.join(10)
        return status


class Kernel:
    """A Jupyter kernel (ipykernel) running a page's cells, as a notebook would."""

    def __init__(self, workdir: Path) -> None:
        from jupyter_client.manager import KernelManager

        self.manager = KernelManager(kernel_name="python3", transport="ipc")  # Unix sockets, no TCP port
        self.manager.start_kernel(cwd=str(workdir))
        self.client = self.manager.client()
        self.client.start_channels()
        try:
            self.client.wait_for_ready(timeout=COMMAND_TIMEOUT)
        except RuntimeError:
            self.close()
            raise

    def execute(self, code: str, where: str) -> str:
        """Run a cell; its printed output. A cell that raises fails with the kernel's traceback."""
        printed: list[str] = []
        failure: list[str] = []

        def output(msg: dict[str, Any]) -> None:
            content = msg["content"]
            if msg["msg_type"] == "stream":
                printed.append(content["text"])
            elif msg["msg_type"] == "execute_result":
                printed.append(content["data"].get("text/plain", "") + "\n")
            elif msg["msg_type"] == "error":
                failure.append("\n".join(re.sub(r"\x1b\[[0-9;]*m", "", line) for line in content["traceback"]))

        reply = self.client.execute_interactive(code, timeout=COMMAND_TIMEOUT, output_hook=output)
        if reply["content"]["status"] != "ok" or failure:
            raise AssertionError(f"{where}: the notebook cell failed in Jupyter:\n" + "\n".join(failure))
        return "".join(printed)

    def evaluate(self, expression: str) -> Any:
        import json

        out = self.execute(f"import json as _json\nprint(_json.dumps({expression}, default=str))", "check")
        return json.loads(out.strip().splitlines()[-1])

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


@dataclass
class PageRun:
    """What running a page left: its directory, Python namespace, outputs and the blocks it did not run."""

    page: Path
    workdir: Path
    namespace: dict[str, Any] = field(default_factory=dict)
    outputs: list[tuple[str, str]] = field(default_factory=list)  # (command, output)
    skipped: list[Block] = field(default_factory=list)
    missing: list[Block] = field(default_factory=list)  # requires a program that is not here
    jobs: list[Job] = field(default_factory=list)
    kernel: Kernel | None = None  # the Jupyter kernel of a notebook page

    def evaluate(self, expression: str) -> Any:
        """A JSON-able expression's value in the page's Python session (this process or its kernel)."""
        if self.kernel is None:
            return eval(expression, self.namespace)
        return self.kernel.evaluate(expression)

    def output_of(self, prefix: str) -> str:
        """The output of the last command that starts with ``prefix``."""
        for command, output in reversed(self.outputs):
            if command.startswith(prefix):
                return output
        raise KeyError(f"{self.page.name} ran no command starting with {prefix!r}")


def environment() -> dict[str, str]:
    """The reader's shell: this interpreter's venv first on PATH, plots to files, output unbuffered."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(MPLBACKEND="Agg", PYTHONUNBUFFERED="1", COLUMNS="200")
    return env


def _run_console(block: Block, run: PageRun, env: dict[str, str]) -> None:
    last_status: int | None = None
    last_command = ""
    for command in commands(block):
        where = f"{block.page.name}:{command.line}"
        if command.text == "echo $?":
            assert last_status is not None, f"{where}: echo $? before any command"
            shown = [line.strip() for line in command.expected if line.strip()]
            assert shown == [str(last_status)], f"{where}: `{last_command}` exited {last_status}, the page says {shown}"
            last_status = None
            continue
        if last_status not in (None, 0):
            raise AssertionError(f"{where}: `{last_command}` exited {last_status}:\n{run.outputs[-1][1]}")
        if block.until and DURATION.search(command.text):
            output, status = _run_until(command.text, block.until, run, env)
            run.outputs.append((command.text, output))
            missing = unmatched(command.expected, output)
            assert missing is None, f"{where}: `{command.text}` did not print {missing!r}; it printed:\n{output}"
            last_status, last_command = status, command.text
            continue
        kill = re.fullmatch(r"kill(?: -(?P<sig>INT|TERM))? %(?P<job>\d+)", command.text)
        if command.text.endswith("&"):
            job = Job(command.text[:-1].strip(), run.workdir, env)
            run.jobs.append(job)
            job.wait_for(command.expected, COMMAND_TIMEOUT)
            last_status, last_command = None, command.text
            continue
        if kill:
            job = run.jobs[int(kill.group("job")) - 1]
            status = job.stop(signal.SIGINT if kill.group("sig") == "INT" else signal.SIGTERM)
            run.outputs.append((job.command, job.output))
            missing = unmatched(command.expected, job.output)
            assert missing is None, f"{where}: `{job.command}` never printed {missing!r}; its output:\n{job.output}"
            last_status, last_command = status, job.command
            continue
        proc = subprocess.run(
            ["bash", "-c", command.text],
            cwd=run.workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )
        run.outputs.append((command.text, proc.stdout))
        missing = unmatched(command.expected, proc.stdout)
        assert missing is None, f"{where}: `{command.text}` did not print {missing!r}; it printed:\n{proc.stdout}"
        last_status, last_command = proc.returncode, command.text
    if last_status not in (None, 0):
        raise AssertionError(f"{block.where}: `{last_command}` exited {last_status}:\n{run.outputs[-1][1]}")


def _rows(workdir: Path, stream: str) -> int:
    """Rows of ``stream`` flushed to the newest run file under ``workdir/data`` (0 while unreadable)."""
    import arrowdaq

    files = sorted((workdir / "data").glob("*.h5"), key=lambda p: p.stat().st_mtime)
    try:
        return arrowdaq.open_run(files[-1]).num_rows(stream) if files else 0
    except Exception:  # not laid out yet, or no such stream yet
        return 0


def _run_until(command: str, until: tuple[int, list[str]], run: PageRun, env: dict[str, str]) -> tuple[str, int]:
    """A timed run (``--duration``) stopped with Ctrl-C once its file has the rows the page needs.

    The page's duration is what a reader waits; on a loaded machine start-up alone can take longer,
    so the test waits for the data instead (the run ends the same way: a complete file, a summary)."""
    rows, streams = until
    job = Job(DURATION.sub(f"--duration {COMMAND_TIMEOUT:g}", command), run.workdir, env)
    deadline = time.monotonic() + COMMAND_TIMEOUT
    while job.proc.poll() is None and time.monotonic() < deadline:
        if all(_rows(run.workdir, stream) >= rows for stream in streams):
            break
        time.sleep(0.5)  # polling the file, as a reader glancing at it; the condition decides
    status = job.stop(signal.SIGINT)
    assert all(_rows(run.workdir, s) >= rows for s in streams), (
        f"`{command}` recorded fewer than {rows} rows of {streams} in {COMMAND_TIMEOUT:g} s:\n{job.output}"
    )
    return job.output, status


def _run_python(block: Block, run: PageRun) -> None:
    name = f"<{block.page.name}:{block.line}>"
    source = "\n" * block.line + block.body  # tracebacks give the page's own line numbers
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    exec(compile(source, name, "exec"), run.namespace)


def run_page(page: Path, workdir: Path) -> Iterator[PageRun]:
    """Run a page's blocks in ``workdir``; yields once they ran (checks go there), then stops its jobs.

    A generator so that a test checks the results while background jobs (a daemon) still run; the
    current directory is ``workdir`` until it resumes (Python's relative paths are the page's)."""
    run = PageRun(page, workdir, namespace={"__name__": "__main__"})
    env = environment()
    saved = {k: os.environ.get(k) for k in ("MPLBACKEND",)}
    os.environ["MPLBACKEND"] = "Agg"
    here = Path.cwd()
    os.chdir(workdir)
    sys.path.insert(0, str(workdir))  # as `python` started in the folder: the page's own modules import
    try:
        if NOTEBOOK.search("\n".join(page.read_text(encoding="utf-8").split("\n")[:5])):
            run.kernel = Kernel(workdir)
        for block in blocks(page):
            if block.skip is not None:
                run.skipped.append(block)
            elif block.requires and shutil.which(block.requires) is None:
                run.missing.append(block)
            elif block.file:
                target = workdir / block.file
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(block.body, encoding="utf-8")
            elif block.lang == "python" and run.kernel is not None:
                print(run.kernel.execute(block.body, block.where), end="")
            elif block.lang == "python":
                _run_python(block, run)
            elif block.lang == "console":
                _run_console(block, run, env)
            elif block.lang not in SHOWN:
                raise AssertionError(
                    f"{block.where}: a {block.lang!r} block that is neither run, a file (first line '# NAME.ext') "
                    "nor marked '% tutorial-test: skip: WHY'"
                )
        yield run
    finally:
        os.chdir(here)
        sys.path.remove(str(workdir))
        for name, module in list(sys.modules.items()):  # the page's modules go with its folder
            if str(getattr(module, "__file__", None) or "").startswith(str(workdir)):
                del sys.modules[name]
        if run.kernel is not None:
            run.kernel.close()
        for job in run.jobs:
            if job.proc.poll() is None:
                job.stop(signal.SIGTERM)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def images(page: Path) -> list[str]:
    """The names (``NAME`` of ``../images/tutorial-NAME.png``) of the pictures a page shows."""
    return IMAGE.findall(page.read_text(encoding="utf-8"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pages", nargs="*", type=Path, help="default: every page of docs/tutorials")
    parser.add_argument("--images", type=Path, help="copy the pictures the pages show into this folder")
    parser.add_argument("--keep", type=Path, help="run in DIR/<page> and keep what the pages made")
    args = parser.parse_args()
    images_dir = args.images.resolve() if args.images else None  # the pages run in their own folders
    pages = [p.resolve() for p in args.pages] or sorted(p for p in PAGES.glob("*.md") if p.name != "index.md")
    failed = 0
    for page in pages:
        base = (args.keep or Path(tempfile.mkdtemp(prefix="arrowdaq-tutorial-"))).resolve()
        workdir = base / page.stem
        workdir.mkdir(parents=True, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(workdir)  # its own daemons only
        started = time.monotonic()
        try:
            for run in run_page(page, workdir):
                for name in images(page) if images_dir else []:
                    images_dir.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(workdir / f"{name}.png", images_dir / f"tutorial-{name}.png")
                    print(f"  {images_dir / f'tutorial-{name}.png'}")
                skipped = ", ".join(f"{b.where} ({b.skip})" for b in run.skipped) or "none"
                print(f"{page.name}: ran in {time.monotonic() - started:.1f} s; skipped: {skipped}")
        except Exception as exc:  # report every page
            failed += 1
            print(f"{page.name}: FAILED: {exc}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
