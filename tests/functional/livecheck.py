"""The one-instant check for dumps of the live-counter test guest
(tests/guests/live_counter.c).

Each vCPU of the guest stores its pass number into every word of its own region, in
address order, without pause; its registers say where it is. An image of one instant
therefore shows, for every vCPU, one cut: words below it hold the pass number (RAX),
words from it on hold the pass before. The cut is RDI while the vCPU is in its
`rep stosq` (RIP at live_store), the region start at live_fill (RCX not loaded yet),
and the region end at every other instruction, between passes.
"""
import struct
import subprocess
from functools import lru_cache

import dumpcheck as dc
from qmp import BUILD

GUEST = BUILD / 'tests' / 'guests' / 'live-counter.elf'
TAIL = 2 << 20                  # the last 2 MiB of the first RAM block
TAIL_MARK = 0x4c494154
MASK = (1 << 64) - 1


@lru_cache(maxsize=None)
def symbols():
    """{name: address} of the test guest, from its symbol table."""
    out = subprocess.run(['nm', str(GUEST)], capture_output=True, text=True, check=True).stdout
    syms = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3:
            syms[parts[2]] = int(parts[0], 16)
    return syms


def cut_of(regs):
    """(region start, cut, region end, pass) that a vCPU's registers describe."""
    sym = symbols()
    start, end = regs['r8'], regs['r8'] + 8 * regs['r9']
    if regs['rip'] == sym['live_store']:
        cut = regs['rdi']
    elif regs['rip'] == sym['live_fill']:
        cut = start
    else:
        cut = end
    return start, cut, end, regs['rax']


def first_difference(data, pattern):
    """Index of the first 8-byte word of data that is not `pattern`."""
    for i in range(0, len(data), 8):
        if data[i:i + 8] != pattern:
            return i
    return None


def problems(read, cpu_regs):
    """What is wrong with the image for each vCPU (empty: exactly the registers' cut).
    read(gpa, size) returns the image's bytes."""
    found = []
    for i, regs in enumerate(cpu_regs):
        start, cut, end, passes = cut_of(regs)
        if not (start <= cut <= end and (cut - start) % 8 == 0 and regs['r9']):
            found.append(f'cpu {i}: registers describe no cut: {regs}')
            continue
        data = read(start, end - start)
        ahead = struct.pack('<Q', passes & MASK)
        behind = struct.pack('<Q', (passes - 1) & MASK)
        k = cut - start
        if data[:k] != ahead * (k // 8):
            j = first_difference(data[:k], ahead)
            found.append(f'cpu {i}: word at {start + j:#x} is {data[j:j + 8].hex()}, '
                         f'not pass {passes} (cut at {cut:#x})')
        if data[k:] != behind * ((end - cut) // 8):
            j = k + first_difference(data[k:], behind)
            found.append(f'cpu {i}: word at {start + j:#x} is {data[j:j + 8].hex()}, '
                         f'not pass {passes - 1} (cut at {cut:#x})')
    return found


class Image:
    """Registers and guest-physical memory of a dump (ELF, raw or flattened kdump)."""

    def __init__(self, path, workdir):
        with open(path, 'rb') as f:
            magic = f.read(16)
        if magic[:4] == b'\x7fELF':
            core = dc.ElfCore(path)
            notes = core.notes
            self.read = core.phys
        else:
            if dc.is_flattened(path):
                path = dc.reassemble(path, workdir / (path.name + '.raw'))
            notes = dc.parse_notes(dc.KdumpFile(path).notes_bytes)
            k = dc.kdumpfile_open(path)
            import kdumpfile
            self.read = lambda gpa, size: k.read(kdumpfile.KDUMP_MACHPHYSADDR, gpa, size)
        self.regs = [dc.prstatus_regs(n['desc']) for n in notes if n['type'] == dc.NT_PRSTATUS]

    def problems(self):
        return problems(self.read, self.regs)

    def tail(self, mem_size):
        """The tail's first word of every page."""
        base = mem_size - TAIL
        return [struct.unpack('<Q', self.read(base + off, 8))[0] for off in range(0, TAIL, 4096)]

    def trigger(self):
        return struct.unpack('<Q', self.read(symbols()['live_trigger'], 8))[0]
