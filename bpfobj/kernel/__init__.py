"""Kernel facts: feature probes (`features.probe()` -> `Features`), the kernel config for
``__kconfig`` externs (`kconfig`), /proc/kallsyms for typeless ksyms (`kallsyms`), and
kernel BTF objects (`btfobj`: module BTF fds). Uses `bpfobj.sys` for its calls."""
