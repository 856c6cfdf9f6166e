#!/usr/bin/env python3
"""sched_slice.py NICE SLICE_NS TID...: give running threads a custom EEVDF slice.

For scheduling experiments (bench/lib.sh hashing_policy), not a server setting: Linux 6.12 and
later take `sched_runtime` of sched_setattr(2) as a SCHED_OTHER thread's slice (clamped to
0.1-100 ms), and a running thread is protected from wake-up preemption for about its slice.
util-linux's chrt sets it only from 2.41, so this calls the syscall through ctypes. Prints
each thread's policy, nice and slice as the kernel reports them back.
"""

import ctypes
import platform
import struct
import sys

# (sched_setattr, sched_getattr) system call numbers.
CALLS = {"x86_64": (314, 315), "aarch64": (274, 275)}
# struct sched_attr, SCHED_ATTR_SIZE_VER1: size, policy, flags, nice, priority, runtime,
# deadline, period, util_min, util_max.
LAYOUT = "=IIQiIQQQII"
SIZE = struct.calcsize(LAYOUT)
SCHED_OTHER = 0


def main() -> None:
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    nice, slice_ns = int(sys.argv[1]), int(sys.argv[2])
    setattr_nr, getattr_nr = CALLS[platform.machine()]
    libc = ctypes.CDLL(None, use_errno=True)
    for tid in map(int, sys.argv[3:]):
        attr = ctypes.create_string_buffer(
            struct.pack(LAYOUT, SIZE, SCHED_OTHER, 0, nice, 0, slice_ns, 0, 0, 0, 0), SIZE
        )
        if libc.syscall(setattr_nr, tid, attr, 0) != 0:
            sys.exit(f"sched_setattr on thread {tid}: errno {ctypes.get_errno()}")
        back = ctypes.create_string_buffer(SIZE)
        libc.syscall(getattr_nr, tid, back, SIZE, 0)
        _, policy, _, nice_back, _, slice_back = struct.unpack(LAYOUT[:7], back.raw[:32])
        print(f"thread {tid}: policy {policy}, nice {nice_back}, slice {slice_back} ns")


if __name__ == "__main__":
    main()
