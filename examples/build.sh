#!/usr/bin/env bash
# Build the example BPF programs into examples/build/ (vmlinux.h from this machine's BTF).
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p build
if [ ! -s build/vmlinux.h ]; then
    bpftool btf dump file /sys/kernel/btf/vmlinux format c > build/vmlinux.h.tmp
    mv build/vmlinux.h.tmp build/vmlinux.h
fi
arch=$(uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
for src in *.bpf.c; do
    out=build/${src%.c}.o
    if [ ! -e "$out" ] || [ "$src" -nt "$out" ]; then
        clang-19 -O2 -g -target bpf -D__TARGET_ARCH_"$arch" -I build -c "$src" -o "$out"
    fi
done
