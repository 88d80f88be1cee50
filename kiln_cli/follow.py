"""Following something that runs on Kiln until it ends: a live display (on stderr) of the
states each of its tracks walked through (a build's statuses, a compose's images, a Cachito
request's steps) with the time spent in each, and its log printed above as it grows.

A face supplies ``poll``: each call returns a ``Snapshot`` of the states now, the log text that
is new since the last call, and whether it has ended. With ``-o json`` nothing is displayed
and the loop only polls."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from kiln_cli.errors import KilnError
from kiln_cli.output import Output

POLL_SECONDS = 1.0
#: how long to wait, once the thing ended, for its log to be complete (streaming false)
LOG_GRACE_SECONDS = 20.0


class Interrupted(KilnError):
    exit_code = 130


@dataclasses.dataclass
class Snapshot:
    states: dict[str, str]  # track -> its state now
    log: str = ""  # log text new since the previous snapshot
    ended: bool = False  # the thing ended (it may still be writing its log)
    log_complete: bool = True  # nothing more will come of the log
    failed: bool = False
    #: track -> the states it walked as Kiln recorded them, [(state, seconds or None)], the
    #: last one still going (Kiln's builds API ``steps``): shown instead of what polling saw
    walked: dict[str, list[tuple[str, float | None]]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Stage:
    state: str
    started: float
    ended: float | None = None

    def seconds(self, now: float) -> float:
        return (self.ended or now) - self.started


class Watch:
    """The rich renderable of the live display: each track's stages, the last one running."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.tracks: dict[str, list[Stage]] = {}
        self.done = False
        self.failed = False

    def observe(self, track: str, state: str) -> None:
        stages = self.tracks.setdefault(track, [])
        now = time.monotonic()
        if stages and stages[-1].state == state:
            return
        if stages:
            stages[-1].ended = now
        stages.append(Stage(state, now))

    def recorded(self, track: str, walked: list[tuple[str, float | None]]) -> None:
        """The track's states as Kiln recorded them: the last one's clock goes on from here."""
        now = time.monotonic()
        stages = [Stage(state, 0.0, seconds or 0.0) for state, seconds in walked[:-1]]
        if walked:
            state, seconds = walked[-1]
            stages.append(Stage(state, now - (seconds or 0.0)))
        self.tracks[track] = stages

    def finish(self, failed: bool) -> None:
        now = time.monotonic()
        for stages in self.tracks.values():
            if stages and stages[-1].ended is None:
                stages[-1].ended = now
        self.done, self.failed = True, failed

    def __rich__(self) -> RenderableType:
        now = time.monotonic()
        table = Table.grid(padding=(0, 1))
        for track, stages in self.tracks.items():
            if track:
                table.add_row(Text(""), Text(track, style="bold"), Text(""))
            for index, stage in enumerate(stages):
                last = index == len(stages) - 1
                mark: RenderableType = Text("✓", style="green")
                if last and not self.done:
                    mark = Spinner("dots", style="cyan")
                elif last and self.failed:
                    mark = Text("✗", style="red")
                table.add_row(mark, Text(stage.state), Text(f"{stage.seconds(now):6.1f}s"))
        return Group(Text(self.title, style="bold"), table)


class LogLines:
    """Log text printed whole lines at a time (a part may end mid-line)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.pending = ""

    def write(self, text: str) -> None:
        lines = (self.pending + text).split("\n")
        self.pending = lines.pop()
        for line in lines:
            self.console.out(line, highlight=False)

    def flush(self) -> None:
        if self.pending:
            self.console.out(self.pending, highlight=False)
            self.pending = ""


def follow(output: Output, title: str, poll: Callable[[], Snapshot], interrupted: str) -> Snapshot:
    """Poll until the thing ended and its log is complete (or LOG_GRACE_SECONDS after it
    ended); ``interrupted``: the message for Ctrl-C (the thing goes on)."""
    watch = Watch(title)
    lines = LogLines(output.status)
    ended_at: float | None = None
    try:
        with Live(
            watch,
            console=output.status,
            refresh_per_second=8,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        ) as live:
            lines.console = live.console
            while True:
                snapshot = poll()
                for track, state in snapshot.states.items():
                    if snapshot.walked.get(track):
                        watch.recorded(track, snapshot.walked[track])
                    else:
                        watch.observe(track, state)
                lines.write(snapshot.log)
                if snapshot.ended:
                    ended_at = ended_at or time.monotonic()
                    late = time.monotonic() - ended_at > LOG_GRACE_SECONDS
                    if snapshot.log_complete or late:
                        break
                time.sleep(POLL_SECONDS)
            lines.flush()
            watch.finish(snapshot.failed)
    except KeyboardInterrupt:
        raise Interrupted(interrupted) from None
    if not output.status.is_terminal:
        output.status.line()  # a live display ends its last line only on a terminal
    return snapshot
