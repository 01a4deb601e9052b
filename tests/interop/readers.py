"""Run the real readers (crash, drgn, gdb, libkdumpfile, makedumpfile) on vmcores."""
import os
import re
import subprocess

CRASH_COMMANDS = 'sys\nbt\nlog\nquit\n'


def crash_report(vmlinux, dump, commands=CRASH_COMMANDS):
    """crash's output for `commands`, without the DUMPFILE line (it names the file)."""
    r = subprocess.run(['crash', '-s', vmlinux, str(dump)], input=commands,
                       capture_output=True, text=True, timeout=300)
    lines = [line for line in (r.stdout + r.stderr).splitlines()
             if not line.strip().startswith('DUMPFILE:')]
    return '\n'.join(lines)


def dump(vm, fmt, name=None, **extra):
    """minivm's dump of vm's guest as `fmt` into vm.work (dump-guest-memory arguments in
    extra, `dump_level` spelt with an underscore)."""
    out = vm.work / (name or f'minivm.{fmt}')
    if out.exists():
        out.unlink()
    if 'dump_level' in extra:
        extra['dump-level'] = extra.pop('dump_level')
    vm.qmp.cmd('dump-guest-memory', paging=extra.pop('paging', False),
               protocol=f'file:{out}', format=fmt, **extra)
    return out


def gdb_print(vmlinux, core, kernel_offset, *exprs):
    """gdb's `print` of each expression on a paging=true ELF core, kernel symbols
    relocated by KERNELOFFSET: (stdout, stdout + stderr)."""
    args = ['gdb', '-batch', '-nx', '-ex', f'add-symbol-file {vmlinux} -o {kernel_offset:#x}',
            '-ex', f'core-file {core}']
    for e in exprs:
        args += ['-ex', f'print {e}']
    r = subprocess.run(args, capture_output=True, text=True, timeout=300)
    return r.stdout, r.stdout + r.stderr


def kaslr_offset(vmcore):
    """KERNELOFFSET from the VMCOREINFO note of a vmcore."""
    with open(vmcore, 'rb') as f:
        head = f.read(1 << 20)
    m = re.search(rb'KERNELOFFSET=([0-9a-f]+)', head)
    assert m, 'no KERNELOFFSET in VMCOREINFO'
    return int(m.group(1), 16)


def reassemble(flat, out):
    with open(flat, 'rb') as src:
        subprocess.run(['makedumpfile', '-R', str(out)], stdin=src, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return out


DRGN_SCRIPT = r'''
import os, sys, drgn
prog = drgn.Program()
prog.set_core_dump(sys.argv[1])
prog.load_debug_info([sys.argv[2]])
thread = prog.crashed_thread()
print("pid", thread.tid)
for frame in thread.stack_trace():
    print(frame.name)
'''


def drgn_crashed_stack(dump, vmlinux, use_libkdumpfile_for_elf=False):
    """(returncode, output) of drgn printing the crashed thread's stack."""
    env = dict(os.environ)
    if use_libkdumpfile_for_elf:
        env['DRGN_USE_LIBKDUMPFILE_FOR_ELF'] = '1'
    r = subprocess.run(['/usr/bin/python3', '-c', DRGN_SCRIPT, str(dump), vmlinux],
                       capture_output=True, text=True, timeout=300, env=env)
    return r.returncode, r.stdout + r.stderr


def kdump_pages(path, addrs):
    import kdumpfile
    k = kdumpfile.kdumpfile(str(path))
    space = kdumpfile.KDUMP_MACHPHYSADDR
    return [k.read(space, a, 4096) for a in addrs]
