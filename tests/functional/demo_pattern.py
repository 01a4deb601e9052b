"""The demo guest's page contents, recomputed (a port of guest/demo_pattern.h), and a
stand-in for its RAM where it cannot run (no KVM): a -mem-path file of such pages."""
import random
import struct

MASK = (1 << 64) - 1
SEED = 0x6d696e69766d3031
FILL_START = 0x400000
WORDS = [b'kernel ', b'memory ', b'dump ', b'page ', b'crash ', b'vmcore ', b'guest ', b'cpu ',
         b'note ', b'zlib ', b'minivm ', b'qemu ', b'stack ', b'frame ', b'panic\n', b'load ']
ZERO_PAGE = bytes(4096)


def mix64(x):
    x &= MASK
    x ^= x >> 30
    x = (x * 0xbf58476d1ce4e5b9) & MASK
    x ^= x >> 27
    x = (x * 0x94d049bb133111eb) & MASK
    x ^= x >> 31
    return x


def page_kind(pfn, seed=SEED):
    return mix64(pfn ^ seed) & 3


def text_page(pfn, seed=SEED):
    state = mix64(pfn + seed)
    out = bytearray()
    while len(out) < 4096:
        state = (state * 6364136223846793005 + 1442695040888963407) & MASK
        out += WORDS[state >> 60]
    return bytes(out[:4096])


def random_page(pfn, seed=SEED):
    x = mix64(pfn ^ (~seed & MASK)) | 1
    words = []
    for _ in range(512):
        x ^= (x << 13) & MASK
        x ^= x >> 7
        x ^= (x << 17) & MASK
        words.append(x)
    return struct.pack('<512Q', *words)


def expected_page(pfn, seed=SEED):
    """Contents of a filled page (pfn at or above FILL_START >> 12) once the guest is ready."""
    kind = page_kind(pfn, seed)
    if kind == 2:
        return text_page(pfn, seed)
    if kind == 3:
        return random_page(pfn, seed)
    return ZERO_PAGE


def make_mem_file(path, size, seed=7, zero_below=0):
    """A guest RAM backing file (-mem-path) with deterministic content: zero pages,
    compressible text pages, incompressible random pages, and repeats — pages of 0xcc
    (Linux's poison for freed init memory) and copies of one random page (all zero
    below zero_below). Written a chunk at a time: sizes of many GiB fit."""
    page = len(ZERO_PAGE)
    r = random.Random(seed)
    shared = r.randbytes(page)
    chunk = bytearray()
    with open(path, 'wb') as f:
        for pfn in range(size // page):
            kind = r.randrange(10) if pfn >= zero_below // page else 0
            if kind in (4, 5, 6):
                chunk += r.randbytes(page)
            elif kind in (7, 8):
                line = b'minivm page %08x ' % pfn
                chunk += (line * (page // len(line) + 1))[:page]
            elif kind == 9:
                chunk += b'\xcc' * page if pfn % 2 else shared
            else:
                chunk += ZERO_PAGE
            if len(chunk) >= 1 << 20:
                f.write(chunk)
                chunk.clear()
        f.write(chunk)
    return path
