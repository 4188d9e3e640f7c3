"""A work dir is owned by one run: an exclusive ``flock`` on ``<dir>/run.lock``, held for the life of the run.

Two runs that write into one directory destroy each other (one run's stale-``.tmp`` clean-up deletes the other's
in-flight checkpoint write, both write ``iter_N.pth``, their logs interleave). :class:`WorkDirLock` lets exactly one
process own a directory:

* :meth:`WorkDirLock.acquire` opens ``<dir>/<name>`` and takes ``fcntl.flock(LOCK_EX | LOCK_NB)`` on it, then writes
  the owner inside (pid, host, kernel boot id, start time, command line). A second process fails to take the lock
  and gets a :class:`WorkDirBusyError` naming that owner and the lock file; it has written nothing.
* The kernel drops a ``flock`` when its holder dies (SIGKILL included), so a lock file left by a killed run is not
  held: the next run takes it over and reports the dead owner (:attr:`WorkDirLock.took_over`). On one machine this
  is exact (no pid guessing, no timeout).
* Other machines (a work dir on NFS / a cluster file system): the owner's host and boot id are recorded, and the
  holder touches the lock file every ``heartbeat_s`` seconds. Where the file system forwards ``flock`` between
  machines (NFSv4, Lustre with ``flock``), a live owner elsewhere keeps the lock and the second run refuses. Where it
  does not (NFS mounted ``nolock`` / ``local_lock=all``), the ``flock`` always succeeds: a record left by another
  kernel (boot id) is then **not** treated as stale unless its heartbeat is older than ``stale_after_s`` (default
  10 minutes); a fresh one refuses with the owner named. A file system that has no locks at all (``ENOLCK``) gets the
  same record-and-heartbeat check with a warning, and on one machine a check that the owner pid is alive.
* flock locks belong to the open file description: a forked child (a DataLoader worker) shares it and its exit does
  not release it; only the acquiring pid ever unlocks or deletes the file. The descriptor is close-on-exec, so
  ``exec``-ed children (``subprocess``) do not inherit it.
* Several runners of one process on one directory (a resumed run, a test, a tool that evaluates after training)
  share the process's lock (reference counted), since they run one after another.
* :meth:`WorkDirLock.release` (normal exit) deletes the file, then unlocks; :meth:`acquire` re-checks that the path
  still names the file it locked, so a run that opened the file just before it was deleted retries.

:func:`acquire_work_dir` is the distributed entry point: only global rank 0 takes the lock (the directory is shared
by the job's ranks; other nodes' ranks do not write checkpoints) and the outcome is broadcast, so every rank of a
refused job raises the same error and no rank refuses its own job. :class:`WorkDirOwnerMixin` wires it into a runner
(``TransVAERunner``, ``TransVAEFlexibleRunner``): the lock is taken before the logger, the config dump and the
checkpoint hook touch the directory and released when ``train()`` / ``val()`` / ``test()`` returns.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import os.path as osp
import shlex
import socket
import sys
import threading
import time
import warnings
import weakref
from typing import Optional

from transvae.utils.errors import UserInputError

#: file name of the lock inside a training / evaluation work dir
RUN_LOCK = 'run.lock'
#: the last sentence of a refusal, for a training / evaluation run
HINT = 'Wait for it to finish or stop it, or give this run another --work-dir'


class WorkDirBusyError(UserInputError, RuntimeError):
    """Another live run owns the directory; the message names it (pid, host, start time, command) and the lock file.

    Attributes:
        lock_path: the lock file.
        owner: the owner's record (``{}`` when it could not be read).
    """

    def __init__(self, message: str, lock_path: str = '', owner: Optional[dict] = None) -> None:
        super().__init__(message)
        self.lock_path = lock_path
        self.owner = dict(owner or {})


def boot_id() -> str:
    """The kernel's boot id (equal for every process and container on one running kernel; ``''`` when unknown)."""
    try:
        with open('/proc/sys/kernel/random/boot_id') as f:
            return f.read().strip()
    except OSError:
        return ''


def describe_owner(owner: dict) -> str:
    """``pid P on host H, started T, command: C`` from an owner record (missing fields left out)."""
    if not owner:
        return 'an unknown owner (the lock file holds no owner record yet)'
    parts = [f"pid {owner.get('pid', '?')} on host {owner.get('host', '?')}"]
    if owner.get('started'):
        parts.append(f"started {owner['started']}")
    if owner.get('command'):
        parts.append(f"command: {owner['command']}")
    return ', '.join(parts)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# one entry per lock file this process holds: {lock path: _Held}
_HELD: dict[str, '_Held'] = {}
_HELD_GUARD = threading.Lock()


class _Held:
    """The open, flock-ed lock file of this process (shared by every :class:`WorkDirLock` on the same path)."""

    def __init__(self, path: str, fd: int, locked: bool, heartbeat_s: float) -> None:
        self.path, self.fd, self.locked, self.pid, self.count = path, fd, locked, os.getpid(), 0
        self._stop = threading.Event()
        self._thread = None
        if heartbeat_s > 0:
            self._thread = threading.Thread(target=self._beat, args=(heartbeat_s,), daemon=True,
                                            name=f'work-dir-lock heartbeat {path}')
            self._thread.start()

    def _beat(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                os.utime(self.fd)  # the mtime is the heartbeat other machines read
            except OSError:
                pass

    def close(self) -> None:
        """Delete the lock file (still ours: nobody else could lock it), then unlock and close (owner pid only)."""
        if os.getpid() != self.pid:  # a forked child's copy: the parent still owns the lock
            return
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)  # it must not touch the descriptor number after we close it
        try:
            st, cur = os.fstat(self.fd), os.stat(self.path)
            if (st.st_dev, st.st_ino) == (cur.st_dev, cur.st_ino):
                os.unlink(self.path)
        except OSError:
            pass
        try:
            if self.locked:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
        except OSError:
            pass
        try:
            os.close(self.fd)
        except OSError:
            pass


class WorkDirLock:
    """Exclusive ownership of ``directory`` by this process (see the module docstring).

    Args:
        directory: the directory to own (created if missing).
        name: lock file name inside it (:data:`RUN_LOCK` for runners; ``extract_latents`` uses one per rank).
        hint: what the refused user can do, the last sentence of the :class:`WorkDirBusyError` message.
        heartbeat_s: how often the holder touches the lock file (0: never).
        stale_after_s: a record of another kernel whose heartbeat is older than this is stale.
        wait_s: keep trying a held lock this long before refusing.

    Usable as a context manager; :meth:`release` is idempotent and also runs when the object is garbage-collected
    or the interpreter exits.
    """

    def __init__(self, directory: str, name: str = RUN_LOCK, hint: str = HINT,
                 heartbeat_s: float = 60.0, stale_after_s: float = 600.0, wait_s: float = 1.0) -> None:
        self.directory = osp.realpath(directory)
        self.path = osp.join(self.directory, name)
        self.hint, self.heartbeat_s, self.stale_after_s, self.wait_s = hint, heartbeat_s, stale_after_s, wait_s
        #: the record of a dead owner this lock replaced (``None``: the lock was free)
        self.took_over: Optional[dict] = None
        self._held: Optional[_Held] = None
        self._finalizer = None

    # -- public ------------------------------------------------------------------------------------------------------
    @property
    def held(self) -> bool:
        return self._held is not None

    def acquire(self) -> 'WorkDirLock':
        """Take the lock or raise :class:`WorkDirBusyError`; returns ``self``."""
        if self._held is not None:
            return self
        with _HELD_GUARD:
            held = _HELD.get(self.path)
            if held is not None and held.pid == os.getpid():
                held.count += 1
                self._attach(held)
                return self
            os.makedirs(self.directory, exist_ok=True)
            held = self._lock_file()
            held.count = 1
            _HELD[self.path] = held
        self._attach(held)
        return self

    def release(self) -> None:
        """Give the lock up (the last holder of this process deletes the file and unlocks it)."""
        held, self._held = self._held, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if held is not None:
            _drop(held)

    def takeover_message(self) -> Optional[str]:
        """The log line for a taken-over stale lock (``None`` when the lock was free)."""
        if self.took_over is None:
            return None
        return (f'{self.path}: took over the lock of a run that is gone ({describe_owner(self.took_over)}); '
                'it was killed or crashed, so its last checkpoint may be older than its log.')

    def __enter__(self) -> 'WorkDirLock':
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    # -- internals ---------------------------------------------------------------------------------------------------
    def _attach(self, held: _Held) -> None:
        self._held = held
        self._finalizer = weakref.finalize(self, _drop, held)

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise type(e)(e.errno, f'cannot create the work-dir lock file {self.path}: {e.strerror}') from None

    def _lock_file(self) -> _Held:
        deadline = time.monotonic() + self.wait_s
        while True:
            fd = self._open()
            locked, busy = True, False
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                busy = True
            except OSError as e:
                if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    os.close(fd)
                    raise
                warnings.warn(f'{self.path}: this file system has no locks ({e.strerror}); two runs in '
                              f'{self.directory} are detected from the owner record only (not race-free).')
                locked = False
            if busy:  # outside the except clause: the refusal is not "during handling of BlockingIOError"
                self._refuse(self._read_record_path(), 'it holds the lock')
            # the path may have been deleted (a normal release) between our open and our flock: retry on the new file
            try:
                st, cur = os.fstat(fd), os.stat(self.path)
                same = (st.st_dev, st.st_ino) == (cur.st_dev, cur.st_ino)
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            try:
                self._check_record(fd, locked)
                self._write_record(fd)
            except BaseException:
                if locked:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
                raise
            return _Held(self.path, fd, locked, self.heartbeat_s)

    def _check_record(self, fd: int, locked: bool) -> None:
        """We hold the flock (or there are no locks): decide whether the record left in the file is stale."""
        owner = _read_record(fd)
        if not owner:
            return
        mine = boot_id()
        same_kernel = (owner.get('boot_id') == mine if mine and owner.get('boot_id')  # no boot id: same host name
                       else owner.get('host') == socket.gethostname())
        if same_kernel:
            pid = owner.get('pid')
            pid = pid if isinstance(pid, int) and pid > 0 else None
            if locked or pid is None or pid == os.getpid() or not _pid_alive(pid):
                self.took_over = owner  # the kernel dropped its lock: the process is gone
                return
            self._refuse(owner, 'its process is alive')
        age = time.time() - os.fstat(fd).st_mtime
        if age > self.stale_after_s:
            self.took_over = dict(owner, heartbeat_age_s=round(age))
            return
        self._refuse(owner, f'it runs on another machine and its heartbeat is {age:.0f} s old (the lock is taken '
                            f'over only when that exceeds {self.stale_after_s:.0f} s: this file system may not pass '
                            'locks between machines). If that run is gone, delete the lock file')

    def _refuse(self, owner: dict, why: str) -> None:
        raise WorkDirBusyError(
            f'{self.directory} is in use by another run: {describe_owner(owner)} (lock file {self.path}; {why}). '
            f'{self.hint}.', lock_path=self.path, owner=owner)

    def _read_record_path(self) -> dict:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return {}
        try:
            return _read_record(fd)
        finally:
            os.close(fd)

    def _write_record(self, fd: int) -> None:
        record = dict(pid=os.getpid(), host=socket.gethostname(), boot_id=boot_id(),
                      started=time.strftime('%Y-%m-%d %H:%M:%S %z'),
                      command=shlex.join([osp.basename(sys.executable)] + list(sys.argv)), directory=self.directory)
        data = (json.dumps(record) + '\n').encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)


def _read_record(fd: int) -> dict:
    try:
        data = os.pread(fd, 65536, 0)
        record = json.loads(data.decode()) if data.strip() else {}
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return record if isinstance(record, dict) else {}


def _drop(held: _Held) -> None:
    with _HELD_GUARD:
        if held.pid != os.getpid():
            return
        held.count -= 1
        if held.count > 0:
            return
        if _HELD.get(held.path) is held:
            del _HELD[held.path]
    held.close()


def owned_by_other_process(directory: str, name: str = RUN_LOCK) -> Optional[dict]:
    """The owner record when another live process holds ``directory``'s lock, else ``None`` (free, or ours).

    Probes with a shared, non-blocking ``flock`` on a new descriptor (never creates the file).
    """
    path = osp.join(osp.realpath(directory), name)
    with _HELD_GUARD:
        held = _HELD.get(path)
        if held is not None and held.pid == os.getpid():
            return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_record(fd) or {'pid': '?'}
    except OSError:
        return None
    finally:
        os.close(fd)  # also drops the probe's shared lock
    return None


# ---------------------------------------------------------------------------------------------------------------------
# distributed runs and runners
# ---------------------------------------------------------------------------------------------------------------------
def acquire_work_dir(directory: str, name: str = RUN_LOCK, hint: str = HINT,
                     **kwargs) -> Optional[WorkDirLock]:
    """Global rank 0 takes ``directory``'s lock; every rank raises the same :class:`WorkDirBusyError` if it fails.

    Call it on every rank (it is a collective when the default process group exists). Returns the lock on rank 0,
    ``None`` on the other ranks.
    """
    from mmengine.dist import broadcast_object_list, get_rank, get_world_size
    lock, error = None, None
    if get_rank() == 0:
        try:
            lock = WorkDirLock(directory, name, hint, **kwargs).acquire()
        except WorkDirBusyError as e:
            error = e
    if get_world_size() > 1:
        box = [None if error is None else (str(error), error.lock_path, error.owner)]
        broadcast_object_list(box, src=0)
        if box[0] is not None and error is None:
            error = WorkDirBusyError(box[0][0], box[0][1], box[0][2])
    if error is not None:
        raise error
    return lock


class WorkDirOwnerMixin:
    """Runner mixin: own ``work_dir`` (:func:`acquire_work_dir`) from before the first write until the run returns.

    The runner calls :meth:`_own_work_dir` once the process group exists and before the logger is built; ``train()``
    / ``val()`` / ``test()`` re-take it if a previous call released it and release it when they return (also on an
    exception). A taken-over stale lock is logged by :meth:`_log_work_dir_takeover`.
    """

    _work_dir_lock: Optional[WorkDirLock] = None
    _work_dir_owned: bool = False

    def _own_work_dir(self) -> None:
        if not self._work_dir_owned:
            self._work_dir_lock = acquire_work_dir(self._work_dir)
            self._work_dir_owned = True

    def _release_work_dir(self) -> None:
        lock, self._work_dir_lock, self._work_dir_owned = self._work_dir_lock, None, False
        if lock is not None:
            lock.release()

    def _log_work_dir_takeover(self, logger) -> None:
        msg = self._work_dir_lock.takeover_message() if self._work_dir_lock is not None else None
        if msg:
            logger.warning(msg)

    def _owning_work_dir(self, run):
        self._own_work_dir()
        try:
            return run()
        finally:
            self._release_work_dir()

    def train(self):
        return self._owning_work_dir(super().train)

    def val(self):
        return self._owning_work_dir(super().val)

    def test(self):
        return self._owning_work_dir(super().test)
