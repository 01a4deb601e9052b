"""Shared helpers for the dump tests: VMs, fd passing, pipes, and independent parsers
for the ELF core, the kdump-compressed (diskdump) file and makedumpfile's flattened
stream (docs/formats.md), plus the real readers (libkdumpfile,
makedumpfile -R, gdb, crash)."""
import contextlib
import ctypes
import hashlib
import mmap
import os
import re
import shutil
import socket
import struct
import subprocess
import threading
import time
import zlib
from pathlib import Path

import pytest

from qmp import Minivm, QMPError, kvm_available  # noqa: F401  (re-exported)
import demo_pattern
from demo_pattern import make_mem_file  # noqa: F401  (re-exported)

PAGE = 4096
FILL_START = demo_pattern.FILL_START
NEED_KVM = pytest.mark.skipif(not kvm_available(),
                              reason='/dev/kvm is not accessible: the demo guest fills RAM '
                                     'only under KVM')

def missing_reader(what):
    """A reader is not installed: skip the test, or fail it under make check, which
    installs every reader (scripts/check.py sets MINIVM_REQUIRE_READERS=1)."""
    if os.environ.get('MINIVM_REQUIRE_READERS') == '1':
        pytest.fail(f'{what}, but make check installs it')
    pytest.skip(what)


KDUMP_FORMATS = ['kdump-zlib', 'kdump-lzo', 'kdump-snappy', 'kdump-zstd']
KDUMP_RAW_FORMATS = ['kdump-raw-zlib', 'kdump-raw-lzo', 'kdump-raw-snappy', 'kdump-raw-zstd']
# compression flag in disk_dump_header.status and page_desc.flags
FORMAT_FLAG = {'zlib': 0x1, 'lzo': 0x2, 'snappy': 0x4, 'zstd': 0x20}
DUMP_DH_COMPRESSED_INCOMPLETE = 0x8


def codec_of(fmt):
    return fmt.rsplit('-', 1)[1]


def raw_of(fmt):
    """kdump-zlib -> kdump-raw-zlib"""
    return 'kdump-raw-' + codec_of(fmt)


# ---------------------------------------------------------------- VMs and monitors

@contextlib.contextmanager
def environ(**values):
    """Set environment variables (None removes) while the block runs: Minivm starts its
    process with the test process's environment."""
    old = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = str(v)
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def start_vm(*args, env=None, **kw):
    with environ(**(env or {})):
        return Minivm(*args, **kw)


def start_filled_vm(workdir, mem='128M', smp=2):
    """A guest whose RAM holds zero, text and random pages: the demo guest under KVM; without
    KVM, -accel none over a -mem-path file of such pages (zero below FILL_START, like the
    demo guest)."""
    if kvm_available():
        vm = start_vm(mem=mem, smp=smp)
        vm.filled_sha256 = None
        return vm
    ram = make_mem_file(Path(workdir) / 'ram', mem_bytes(mem), zero_below=FILL_START)
    digest = filled_digest(ram)                 # before minivm maps the file
    vm = start_vm('-mem-path', str(ram), mem=mem, smp=smp, accel='none')
    vm.filled_sha256 = digest
    return vm


def filled_digest(path):
    """sha256 of a RAM image from FILL_START on (below it minivm writes boot data)."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        f.seek(FILL_START)
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def pmemsave_filled(vm, path, size):
    """pmemsave of a start_filled_vm guest, checked against the pages written into its
    -mem-path file before minivm started (without KVM), so that what the dump tests take
    as the guest's memory does not come from minivm alone."""
    pmemsave(vm.qmp, path, size)
    if vm.filled_sha256:
        assert filled_digest(path) == vm.filled_sha256, 'pmemsave differs from the RAM file'


def read_socket_dump(q, fmt='elf', name='ksock'):
    """Dump through fd: to a stream socket; returns the bytes that arrived."""
    a, b = socket.socketpair()
    chunks = []

    def read():
        while True:
            data = b.recv(1 << 20)
            if not data:
                break
            chunks.append(data)
    t = threading.Thread(target=read, daemon=True)
    t.start()
    try:
        send_fd(q, name, a.fileno())
        a.close()
        assert q.cmd('dump-guest-memory', paging=False, protocol=f'fd:{name}', format=fmt) == {}
        t.join(60)
    finally:
        a.close()
        b.close()
    return b''.join(chunks)


def assert_rss_flat(before_kib, after_kib, what, margin_kib=8 * 1024):
    """RSS may not grow by more than the margin. Skipped under ASan, whose quarantine keeps
    freed memory resident on purpose (LeakSanitizer checks leaks there instead)."""
    if os.environ.get('MINIVM_SANITIZE'):
        return
    assert after_kib - before_kib <= margin_kib, \
        f'RSS grew from {before_kib} KiB to {after_kib} KiB ({what})'


def page_cache_bytes(path):
    """How much of the file is in the page cache (mincore over a shared mapping)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    size = os.path.getsize(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        assert addr not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
        pages = (size + PAGE - 1) // PAGE
        vec = ctypes.create_string_buffer(pages)
        rc = libc.mincore(addr, size, vec)
        libc.munmap(addr, size)
        assert rc == 0, os.strerror(ctypes.get_errno())
        return sum(b & 1 for b in vec.raw[:pages]) * PAGE
    finally:
        os.close(fd)


def fd_count(pid):
    return len(os.listdir(f'/proc/{pid}/fd'))


def vm_rss_kib(pid, field='VmRSS'):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise AssertionError(f'no {field}')


def mem_bytes(size):
    """'128M' -> bytes"""
    units = {'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30}
    return int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size)


def ram_ranges(size):
    """Guest-physical RAM ranges [start, end) of a pc-like machine with `size` bytes."""
    if size >= 3584 << 20:
        return [(0, 3 << 30), (1 << 32, (1 << 32) + size - (3 << 30))]
    return [(0, size)]


def drain(q, seconds):
    """Read every message arriving within `seconds`; keep events in q.events."""
    deadline = time.time() + seconds
    try:
        while True:
            remaining = deadline - time.time()
            if remaining <= 0:
                break
            q.sock.settimeout(remaining)
            msg = q.recv()
            if 'event' in msg:
                q.events.append(msg)
    except (socket.timeout, TimeoutError):
        pass
    finally:
        q.sock.settimeout(60)


def event_names(q):
    return [e['event'] for e in q.events]


def status(q):
    return q.cmd('query-status')['status']


def dump(q, path, fmt='elf', **kw):
    args = dict(paging=False, protocol=f'file:{path}', **kw)
    if fmt is not None:
        args['format'] = fmt
    return q.cmd('dump-guest-memory', **args)


def dump_error(q, **args):
    """Run dump-guest-memory expecting an error; return the error object."""
    args.setdefault('paging', False)
    reply = q.execute('dump-guest-memory', args)
    assert 'error' in reply, f'expected an error for {args}, got {reply}'
    return reply['error']


def pmemsave(q, path, size, addr=0):
    out = q.hmp('pmemsave %d %d %s' % (addr, size, path))
    assert out.strip() == '', out
    assert os.path.getsize(path) == size


def send_fd(q, name, fd):
    q.cmd('getfd', fds=[fd], fdname=name)


def hmp_registers(q):
    """Parse minivm's HMP `info registers` (CPU#n sections) -> {cpu: {REG: int}}."""
    out = q.hmp('info registers')
    cpus = {}
    cur = None
    for line in out.splitlines():
        m = re.match(r'^CPU#(\d+)', line)
        if m:
            cur = cpus.setdefault(int(m.group(1)), {})
            continue
        if cur is None:
            continue
        for name, value in re.findall(r'\b([A-Z][A-Z0-9_]*)\s*=\s*([0-9a-f]+)\b', line):
            cur.setdefault(name, int(value, 16))
    return cpus


class PipeReader:
    """The read end of a pipe drained by a thread; `gated` holds reading until release()."""

    def __init__(self, gated=False):
        self.r, self.w = os.pipe()
        self.gate = threading.Event()
        if not gated:
            self.gate.set()
        self.chunks = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.gate.wait()
        if self.r is None:
            return                # abandoned
        while True:
            data = os.read(self.r, 1 << 20)
            if not data:
                break
            self.chunks.append(data)
        os.close(self.r)

    def hand_to(self, q, name):
        """Pass the write end to minivm with getfd and drop our copy."""
        send_fd(q, name, self.w)
        os.close(self.w)
        self.w = None

    def release(self):
        self.gate.set()

    def abandon(self):
        """Close the read end unread: the writer gets EPIPE."""
        os.close(self.r)
        self.r = None
        self.gate.set()

    def finish(self, q, timeout=60):
        """Let the dump through; (its DUMP_COMPLETED event, the bytes written)."""
        self.release()
        ev = q.wait_event('DUMP_COMPLETED', timeout=timeout)
        return ev, self.data()

    def data(self, timeout=120):
        self.gate.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), 'pipe writer never closed its end'
        return b''.join(self.chunks)

    def close(self):
        if self.w is not None:
            os.close(self.w)
            self.w = None


# ---------------------------------------------------------------- page sampling

def sample_pfns(ranges, count=3000, seed=1):
    """A deterministic sample of guest PFNs: first and last of every range, the first
    filled pages, plus a stride through everything."""
    pfns = set()
    total = sum((e - s) // PAGE for s, e in ranges)
    step = max(1, total // count)
    for s, e in ranges:
        first, last = s // PAGE, e // PAGE - 1
        pfns.update({first, first + 1, last - 1, last})
        pfns.update(range(first + (seed % step), last + 1, step))
        if first <= FILL_START // PAGE <= last:
            pfns.update(range(FILL_START // PAGE, min(last, FILL_START // PAGE + 64) + 1))
    return sorted(pfns)


class MemImage:
    """A pmemsave file of the whole RAM of a guest with one block from 0."""

    def __init__(self, path):
        self.path = path
        self.data = Path(path).read_bytes()

    def page(self, pfn):
        return self.data[pfn * PAGE:(pfn + 1) * PAGE]

    def zero(self, pfn):
        return self.page(pfn) == demo_pattern.ZERO_PAGE


def kdumpfile_open(path):
    try:
        import kdumpfile
    except ImportError:
        missing_reader('python3-libkdumpfile is not installed')
    return kdumpfile.kdumpfile(str(path))


def kdumpfile_page(k, pfn):
    import kdumpfile
    return k.read(kdumpfile.KDUMP_MACHPHYSADDR, pfn * PAGE, PAGE)


def compare_reader_with_mem(k, mem, pfns):
    """Return the PFNs whose page read through libkdumpfile differs from `mem`."""
    return [pfn for pfn in pfns if kdumpfile_page(k, pfn) != mem.page(pfn)]


# ---------------------------------------------------------------- ELF

PT_LOAD, PT_NOTE = 1, 4
NT_PRSTATUS = 1
# x86_64 elf_prstatus pr_reg order (docs/formats.md, "NT_PRSTATUS, x86_64")
PRSTATUS_REGS = ['r15', 'r14', 'r13', 'r12', 'rbp', 'rbx', 'r11', 'r10', 'r9', 'r8', 'rax',
                 'rcx', 'rdx', 'rsi', 'rdi', 'orig_rax', 'rip', 'cs', 'eflags', 'rsp', 'ss',
                 'fs_base', 'gs_base', 'ds', 'es', 'fs', 'gs']
# QEMUCPUState (docs/formats.md, "QEMU CPU state")
QEMU_NOTE_REGS = ['rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rsp', 'rbp', 'r8', 'r9', 'r10',
                  'r11', 'r12', 'r13', 'r14', 'r15', 'rip', 'rflags']


def parse_notes(data):
    notes = []
    off = 0
    while off + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from('<III', data, off)
        name = data[off + 12:off + 12 + namesz].rstrip(b'\0').decode()
        doff = off + 12 + ((namesz + 3) & ~3)
        notes.append({'name': name, 'type': ntype, 'namesz': namesz,
                      'desc': data[doff:doff + descsz], 'offset': off})
        off = doff + ((descsz + 3) & ~3)
    assert off == len(data), f'note stream ends at {off}, not at {len(data)}'
    return notes


def prstatus_regs(desc):
    assert len(desc) == 336, len(desc)
    regs = dict(zip(PRSTATUS_REGS, struct.unpack_from('<27Q', desc, 112)))
    regs['pid'] = struct.unpack_from('<i', desc, 32)[0]
    return regs


def qemu_note_regs(desc):
    version, size = struct.unpack_from('<II', desc, 0)
    regs = dict(zip(QEMU_NOTE_REGS, struct.unpack_from('<18Q', desc, 8)))
    regs.update(version=version, size=size)
    regs['cs_selector'] = struct.unpack_from('<I', desc, 152)[0]
    regs['cr'] = struct.unpack_from('<5Q', desc, 392)
    regs['idt_base'] = struct.unpack_from('<Q', desc, 384)[0]
    regs['gdt_base'] = struct.unpack_from('<Q', desc, 360)[0]
    if size >= 440:
        regs['kernel_gs_base'] = struct.unpack_from('<Q', desc, 432)[0]
    return regs


class ElfCore:
    """An ELF64 core parsed from its first bytes (memory is read on demand)."""

    def __init__(self, path=None, data=None):
        self.path = path
        if data is None:
            with open(path, 'rb') as f:
                head = f.read(1 << 20)
            self.size = os.path.getsize(path)
        else:
            head = data[:1 << 20]
            self.size = len(data)
        self.data = data
        assert head[:4] == b'\x7fELF', head[:16]
        self.ident = head[:16]
        (self.e_type, self.e_machine, self.e_version, self.e_entry, self.e_phoff, self.e_shoff,
         self.e_flags, self.e_ehsize, self.e_phentsize, self.e_phnum, self.e_shentsize,
         self.e_shnum, self.e_shstrndx) = struct.unpack_from('<HHIQQQIHHHHHH', head, 16)
        phnum = self.e_phnum
        if phnum == 0xffff:
            phnum = struct.unpack_from('<I', head, self.e_shoff + 44)[0]
        self.phdrs = []
        for i in range(phnum):
            off = self.e_phoff + i * self.e_phentsize
            if off + 56 > len(head):
                with open(path, 'rb') as f:
                    f.seek(off)
                    ph = f.read(56)
                fields = struct.unpack('<IIQQQQQQ', ph)
            else:
                fields = struct.unpack_from('<IIQQQQQQ', head, off)
            self.phdrs.append(dict(zip(('type', 'flags', 'offset', 'vaddr', 'paddr', 'filesz',
                                        'memsz', 'align'), fields)))
        note = self.phdrs[0]
        self.note_bytes = self.read_at(note['offset'], note['filesz'])
        self.notes = parse_notes(self.note_bytes)

    @property
    def loads(self):
        return [p for p in self.phdrs if p['type'] == PT_LOAD]

    def read_at(self, offset, size):
        if self.data is not None:
            return self.data[offset:offset + size]
        with open(self.path, 'rb') as f:
            f.seek(offset)
            return f.read(size)

    def phys(self, addr, size):
        """Bytes at a guest-physical address through the PT_LOADs' p_paddr."""
        for p in self.loads:
            if p['paddr'] <= addr and addr + size <= p['paddr'] + p['memsz']:
                rel = addr - p['paddr']
                have = max(0, min(size, p['filesz'] - rel))
                return self.read_at(p['offset'] + rel, have) + bytes(size - have)
        raise KeyError(hex(addr))


def run_tool(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kw)


def assert_no_warnings(proc):
    """The tool exited 0 and printed no warning or error line."""
    assert proc.returncode == 0, proc.stderr
    bad = [line for line in (proc.stdout + proc.stderr).splitlines()
           if re.search(r'warning|error', line, re.I)]
    assert not bad, bad


def gdb_binary():
    for name in ('gdb-multiarch', 'gdb'):
        path = shutil.which(name)
        if path:
            return path
    missing_reader('gdb is not installed')


def gdb_threads(core):
    """Run gdb on a core: {lwp: {reg: int}} from `thread apply all info registers`."""
    proc = run_tool([gdb_binary(), '-nx', '-batch', '-ex', 'set architecture i386:x86-64',
                     '-ex', 'info threads',
                     '-ex', 'thread apply all info registers rip rsp rax r15 eflags cs',
                     '-c', str(core)])
    assert proc.returncode == 0, proc.stderr
    threads = {}
    cur = None
    for line in proc.stdout.splitlines():
        m = re.match(r'^Thread \d+ \(LWP (\d+)\)', line)
        if m:
            cur = threads.setdefault(int(m.group(1)), {})
            continue
        m = re.match(r'^(rip|rsp|rax|r15|eflags|cs)\s+(0x[0-9a-f]+)', line)
        if m and cur is not None:
            cur[m.group(1)] = int(m.group(2), 16)
    return threads, proc


# ---------------------------------------------------------------- kdump

class KdumpHeader:
    """disk_dump_header + kdump_sub_header (64-bit layouts) of a raw kdump file."""

    def __init__(self, path):
        self.path = path
        with open(path, 'rb') as f:
            h = f.read(PAGE)
        self.raw = h
        self.signature = h[0:8]
        self.header_version = struct.unpack_from('<i', h, 8)[0]
        names = [h[12 + 65 * i:12 + 65 * (i + 1)].split(b'\0')[0].decode() for i in range(6)]
        (self.sysname, self.nodename, self.release, self.version, self.machine,
         self.domainname) = names
        self.timestamp = struct.unpack_from('<qq', h, 408)
        (self.status, self.block_size, self.sub_hdr_size, self.bitmap_blocks, self.max_mapnr,
         self.total_ram_blocks, self.device_blocks, self.written_blocks, self.current_cpu,
         self.nr_cpus) = struct.unpack_from('<IiiIIIIIii', h, 424)
        bs = self.block_size
        with open(path, 'rb') as f:
            f.seek(bs)
            s = f.read(104)
        (self.phys_base, self.dump_level, self.split, self.start_pfn, self.end_pfn,
         self.offset_vmcoreinfo, self.size_vmcoreinfo, self.offset_note, self.size_note,
         self.offset_eraseinfo, self.size_eraseinfo, self.start_pfn_64, self.end_pfn_64,
         self.max_mapnr_64) = struct.unpack('<QiiQQQQQQQQQQQ', s)


class KdumpFile(KdumpHeader):
    """A raw kdump-compressed file: bitmaps and page descriptors."""

    def __init__(self, path):
        super().__init__(path)
        bs = self.block_size
        self.data = Path(path).read_bytes()
        half = self.bitmap_blocks // 2 * bs
        start = (1 + self.sub_hdr_size) * bs
        self.bitmap1 = self.data[start:start + half]
        self.bitmap2 = self.data[start + half:start + 2 * half]
        self.desc_offset = start + 2 * half
        self.dumpable = [p for p in range(self.max_mapnr_64) if self.bitmap2[p >> 3] >> (p & 7) & 1]
        self.index = {pfn: i for i, pfn in enumerate(self.dumpable)}
        self.data_offset = self.desc_offset + 24 * len(self.dumpable)
        self.notes_bytes = self.data[self.offset_note:self.offset_note + self.size_note]

    def bit(self, bitmap, pfn):
        return bitmap[pfn >> 3] >> (pfn & 7) & 1

    def desc(self, pfn):
        i = self.index[pfn]
        off, size, flags, page_flags = struct.unpack_from('<qIIQ', self.data,
                                                          self.desc_offset + 24 * i)
        return {'offset': off, 'size': size, 'flags': flags, 'page_flags': page_flags}

    def stored(self, pfn):
        d = self.desc(pfn)
        return self.data[d['offset']:d['offset'] + d['size']]


def is_flattened(path):
    with open(path, 'rb') as f:
        return f.read(16) == b'makedumpfile'.ljust(16, b'\0')


def reassemble(flat, out):
    """makedumpfile -R out < flat"""
    if not shutil.which('makedumpfile'):
        missing_reader('makedumpfile is not installed')
    with open(flat, 'rb') as src:
        proc = subprocess.run(['makedumpfile', '-R', str(out)], stdin=src,
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def compressible(page):
    """Whether a page certainly compresses (True), certainly does not (False), or
    is borderline (None), judged with zlib at level 1 as a proxy for every codec."""
    n = len(zlib.compress(page, 1))
    if n < PAGE // 2:
        return True
    if n >= PAGE:
        return False
    return None


def crash_header(path):
    """crash -d 8 prints the dump header while it fails on a non-vmlinux namelist."""
    crash = shutil.which('crash')
    if not crash:
        missing_reader('crash is not installed')
    proc = subprocess.run([crash, '-d', '8', '/bin/true', str(path)], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120)
    return proc.stdout + proc.stderr


def files_equal(a, b):
    """Byte-equal files (cmp); returns (equal, cmp's description of the first difference)."""
    proc = subprocess.run(['cmp', str(a), str(b)], capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    return (True, None) if proc.returncode == 0 else (False, (proc.stdout + proc.stderr).strip())
