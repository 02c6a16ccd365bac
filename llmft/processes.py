"""Child processes that never outlive their parent: a trainer whose worker, or a torchrun rank
whose launcher, was killed with SIGKILL goes with it instead of training on as an orphan."""

import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """In a child (before exec, or first thing): receive `sig` when the parent dies."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, sig)


def die_with_launcher() -> None:
    """The same, from inside a running process; exits at once if the parent is already gone."""
    parent = os.getppid()
    die_with_parent()
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)
