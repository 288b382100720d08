"""The exceptions arrowdaq raises.

One small hierarchy, so a caller can catch "any instrument problem" or "any
storage problem" without knowing which driver or writer raised it. Every message
names what was wrong: the field, the stream, the actor, the device or the file.
"""

from __future__ import annotations


class ArrowDAQError(Exception):
    """Base of every error arrowdaq raises on purpose."""


class Unrecoverable(ArrowDAQError):
    """A failure a restart cannot fix (disk full, unwritable directory).

    Raised inside an actor, it makes the supervisor mark the actor Failed at
    once instead of restarting it: a restart would only fail again.
    """


class ConfigError(Unrecoverable):
    """A configuration file or value is invalid (names the file and key path).

    Raised inside an actor (a driver refusing its settings) it is final: a
    restart would refuse them again.
    """


class InstrumentConfigError(ConfigError):
    """An instrument's settings are wrong (unknown setting, bad address or axis): a restart cannot fix them."""


class SchemaError(ArrowDAQError):
    """A batch does not match the schema its stream declared (names the field)."""


class StreamError(ArrowDAQError):
    """A stream is unknown, declared twice, or used against its declaration."""


# --- actors -----------------------------------------------------------------
class ActorError(ArrowDAQError):
    """A problem talking to an actor."""


class AskTimeout(ActorError, TimeoutError):
    """An actor did not answer an `ask` in time (stuck, dead or overloaded)."""


class ActorNotRunning(ActorError):
    """The actor has stopped or failed and takes no more messages."""


class CommandError(ArrowDAQError):
    """A command was refused: unknown action, bad argument, unsafe request.

    Raised inside an actor's handler it goes back to the caller of `ask` and,
    unlike any other exception, does not make the supervisor restart the actor:
    a typo in a command is not a device failure.
    """


class MotionStopped(CommandError):
    """A move did not arrive because ``stop()`` interrupted it (the axis stands where it stopped).

    A CommandError: the move's caller learns it did not arrive; the device is fine.
    """


# --- instruments -------------------------------------------------------------
class InstrumentError(ArrowDAQError):
    """A device misbehaved: no reply, garbage, an error reply, a lost link."""


class DeviceTimeout(InstrumentError, TimeoutError):
    """The device did not answer within its timeout."""


class ProtocolError(InstrumentError):
    """The device answered something the protocol does not allow (garbage)."""


class DeviceErrorReply(InstrumentError):
    """The device answered with an error or limit condition (ERR, OVER, status code)."""


class ConnectionLost(InstrumentError, ConnectionError):
    """The link to the device closed or could not be opened."""


class InstrumentStartError(InstrumentError):
    """A required instrument could not start, so the run was stopped (``arrowdaq run`` exits 3)."""

    exit_status = 3


class ReadingOutOfRange(DeviceErrorReply):
    """The device flagged a reading instead of giving a number (OVER, UNDER, SAT): ``condition`` names it."""

    def __init__(self, message: str, condition: str = "") -> None:
        super().__init__(message)
        self.condition = condition


class DeviceStatusError(DeviceErrorReply):
    """The device reported a numbered error: an ESP300 error-buffer entry, an Elliptec status code."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


# --- storage and processing ----------------------------------------------------
class StorageError(ArrowDAQError):
    """Writing or reading a run file failed (names the file)."""


class StorageWriteError(StorageError, Unrecoverable):
    """Writing the run file failed; recording stopped, what was flushed stays readable."""


class RunFileBusy(StorageError):
    """Another process (a viewer, ``open_run``) holds the run file, so its structure cannot change now."""


class ProcessorError(ArrowDAQError):
    """A processor cannot handle its input or its parameters."""


class ProcessorConfigError(ProcessorError, Unrecoverable):
    """A processor's parameters do not fit its input (wrong kind, bad query): a restart cannot help."""


def describe(exc: BaseException) -> str:
    """A one-line description of an error for status lines and logs: ``Type: message``."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --- the live service, as its clients see it ---------------------------------------
class LiveServiceError(ArrowDAQError):
    """The daemon refused or failed a request; the message is the daemon's."""


class AuthenticationError(LiveServiceError):
    """The daemon refused the token (or none was sent)."""


class DaemonUnavailable(LiveServiceError, ConnectionError):
    """No daemon answers at the address, or it stopped (no data nor heartbeat)."""


class GapError(LiveServiceError):
    """A lossless subscription fell too far behind: batches from ``seq`` on were not delivered."""

    def __init__(self, message: str, seq: int = -1) -> None:
        super().__init__(message)
        self.seq = seq
