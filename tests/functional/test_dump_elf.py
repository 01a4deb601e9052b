"""dump-guest-memory to ELF on the demo guest (issue 3), checked with real readers
(readelf, eu-readelf, libkdumpfile, gdb) and against pmemsave of the same paused guest."""
import os
import re
import shutil
import struct
import subprocess
import time

import pytest

import demo_pattern
from dumpcheck import (assert_rss_flat, read_socket_dump, vm_rss_kib, NEED_KVM, PAGE, PT_LOAD, PT_NOTE, NT_PRSTATUS, ElfCore, MemImage,
                       PipeReader, assert_no_warnings, compare_reader_with_mem, drain, dump,
                       dump_error, event_names, files_equal, gdb_binary, gdb_threads, hmp_registers,
                       kdumpfile_open, kdumpfile_page, kvm_available, pmemsave,  # noqa: F401
                       make_mem_file, prstatus_regs, qemu_note_regs, ram_ranges, run_tool, sample_pfns,
                       missing_reader, pmemsave_filled, send_fd, start_filled_vm, status)

MEM = 128 << 20
SMP = 2


@pytest.fixture(scope='module')
def paused(tmp_path_factory):
    """One demo guest (-smp 2, 128M), paused: its pmemsave, HMP registers and ELF dump."""
    d = tmp_path_factory.mktemp('elf')
    vm = start_filled_vm(d, mem='128M', smp=SMP)
    try:
        q = vm.qmp
        q.cmd('stop')
        pmemsave_filled(vm, d / 'mem', MEM)
        regs = hmp_registers(q)
        dump(q, d / 'core.elf')
        q.events.clear()
        yield {'vm': vm, 'q': q, 'dir': d, 'mem': MemImage(d / 'mem'), 'regs': regs,
               'core': d / 'core.elf'}
    finally:
        vm.close()


# ---------------------------------------------------------------- readers

def test_readelf_clean(paused):
    proc = run_tool(['readelf', '-h', '-l', '-n', '-W', str(paused['core'])])
    assert_no_warnings(proc)
    assert proc.stdout.count('NT_PRSTATUS') == SMP
    assert re.search(r'Type:\s+CORE', proc.stdout)
    assert re.search(r'Machine:\s+Advanced Micro Devices X86-64', proc.stdout)


def test_eu_readelf_clean(paused):
    if not shutil.which('eu-readelf'):
        missing_reader('eu-readelf (elfutils) is not installed')
    proc = run_tool(['eu-readelf', '-h', '-l', '-n', str(paused['core'])])
    assert_no_warnings(proc)
    assert len(re.findall(r'^\s+CORE\s+336\s+PRSTATUS', proc.stdout, re.M)) == SMP
    assert len(re.findall(r'^\s+QEMU\s+440\s', proc.stdout, re.M)) == SMP


def test_elf_layout(paused):
    core = ElfCore(paused['core'])
    assert core.ident[4] == 2 and core.ident[5] == 1 and core.ident[6] == 1   # ELF64 LSB v1
    assert (core.e_type, core.e_machine, core.e_version) == (4, 62, 1)
    assert core.e_phoff == 64
    assert core.e_ehsize == 64 and core.e_phentsize == 56
    assert core.e_phnum == len(core.phdrs) == 2
    assert core.e_shnum == 0 and core.e_shoff == 0
    note, load = core.phdrs
    assert note['type'] == PT_NOTE
    assert note['offset'] == 64 + 56 * core.e_phnum
    assert note['align'] in (0, 4)
    assert note['vaddr'] == note['paddr'] == 0 and note['filesz'] == note['memsz']
    assert load['type'] == PT_LOAD
    assert load['align'] == 0 and load['flags'] == 0
    assert load['paddr'] == load['vaddr'] == 0
    assert load['filesz'] == load['memsz'] == MEM
    # notes lie before the first memory byte (memory may start page aligned after them)
    assert note['offset'] + note['filesz'] <= load['offset'] < note['offset'] + note['filesz'] + PAGE
    gap = core.read_at(note['offset'] + note['filesz'], load['offset'] - note['offset'] - note['filesz'])
    assert gap == bytes(len(gap))
    assert core.size == load['offset'] + load['filesz']


def test_elf_notes(paused):
    core = ElfCore(paused['core'])
    notes = core.notes
    assert len(notes) == 2 * SMP
    assert [(n['name'], n['type']) for n in notes] == \
        [('CORE', NT_PRSTATUS)] * SMP + [('QEMU', 0)] * SMP
    for i in range(SMP):
        pr = prstatus_regs(notes[i]['desc'])
        qn = qemu_note_regs(notes[SMP + i]['desc'])
        hmp = paused['regs'][i]
        assert pr['pid'] == i + 1
        assert (qn['version'], qn['size']) == (1, 440)
        assert len(notes[SMP + i]['desc']) == 440
        for reg in ('rip', 'rsp', 'rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rbp', 'r8', 'r15'):
            assert pr[reg] == qn[reg] == hmp[reg.upper()], (i, reg)
        assert pr['eflags'] == qn['rflags'] == hmp['RFL']
        assert pr['cs'] == qn['cs_selector'] == hmp['CS']
        assert pr['ss'] == hmp['SS'] and pr['ds'] == hmp['DS']
        assert qn['cr'][0] == hmp['CR0'] and qn['cr'][3] == hmp['CR3']
        assert qn['cr'][4] == hmp['CR4']
        assert qn['gdt_base'] == hmp['GDT'] and qn['idt_base'] == hmp['IDT']


def test_libkdumpfile_pages_equal_pmemsave(paused):
    k = kdumpfile_open(paused['core'])
    mem = paused['mem']
    pfns = sample_pfns(ram_ranges(MEM))
    assert 0 in pfns and MEM // PAGE - 1 in pfns and len(pfns) > 2000
    assert compare_reader_with_mem(k, mem, pfns) == []
    # the same pages through our own PT_LOAD walk
    core = ElfCore(paused['core'])
    bad = [p for p in pfns[::7] if core.phys(p * PAGE, PAGE) != mem.page(p)]
    assert bad == []


@NEED_KVM
def test_pages_equal_demo_pattern(paused):
    k = kdumpfile_open(paused['core'])
    pfns = [p for p in sample_pfns(ram_ranges(MEM)) if p >= demo_pattern.FILL_START // PAGE]
    kinds = {demo_pattern.page_kind(p) for p in pfns}
    assert kinds == {0, 1, 2, 3}
    bad = [p for p in pfns if kdumpfile_page(k, p) != demo_pattern.expected_page(p)]
    assert bad == []


def test_gdb_threads_and_registers(paused):
    threads, proc = gdb_threads(paused['core'])
    assert sorted(threads) == list(range(1, SMP + 1)), proc.stdout + proc.stderr
    for lwp, regs in threads.items():
        hmp = paused['regs'][lwp - 1]
        assert regs == {'rip': hmp['RIP'], 'rsp': hmp['RSP'], 'rax': hmp['RAX'],
                        'r15': hmp['R15'], 'eflags': hmp['RFL'], 'cs': hmp['CS']}, lwp


def test_file_is_sparse(paused):
    """Zero memory is not written: the file has holes, at least wherever guest RAM has a
    long run of zero pages (short runs may be written with the data around them)."""
    st = os.stat(paused['core'])
    assert st.st_blocks * 512 < st.st_size
    mem = paused['mem']
    long_runs, run = 0, 0
    for pfn in range(MEM // PAGE + 1):
        if pfn < MEM // PAGE and mem.zero(pfn):
            run += 1
            continue
        if run * PAGE >= 1 << 20:
            long_runs += run * PAGE
        run = 0
    assert long_runs >= 1 << 20
    assert st.st_blocks * 512 <= st.st_size - long_runs + (1 << 20)


def test_fd_dump_to_file_equals_file_dump(paused):
    q, d = paused['q'], paused['dir']
    path = d / 'fd.elf'
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        send_fd(q, 'dumpfd', fd)
    finally:
        os.close(fd)
    assert q.cmd('dump-guest-memory', paging=False, protocol='fd:dumpfd') == {}
    assert files_equal(path, paused['core']) == (True, None)
    # the dump consumed the fd
    err = dump_error(q, protocol='fd:dumpfd')
    assert err == {'class': 'GenericError',
                   'desc': "File descriptor named 'dumpfd' has not been found"}
    path.unlink()


def test_pipe_dump_equals_file_dump(paused):
    q = paused['q']
    reader = PipeReader()
    try:
        reader.hand_to(q, 'pipefd')
        assert q.cmd('dump-guest-memory', paging=False, protocol='fd:pipefd') == {}
        data = reader.data()
    finally:
        reader.close()
    assert len(data) == os.path.getsize(paused['core'])
    with open(paused['core'], 'rb') as f:
        assert data == f.read()
    ev = q.wait_event('DUMP_COMPLETED', timeout=5)
    assert ev['data']['result'] == {'total': MEM, 'status': 'completed', 'completed': MEM}


# ---------------------------------------------------------------- begin/length

def test_filter_clips_one_load(paused):
    q, d, mem = paused['q'], paused['dir'], paused['mem']
    begin, length = 0x3ff800, 0x2000 + 0x123
    q.events.clear()
    dump(q, d / 'filt.elf', begin=begin, length=length)
    core = ElfCore(d / 'filt.elf')
    assert [(p['paddr'], p['vaddr'], p['filesz'], p['memsz']) for p in core.loads] == \
        [(begin, begin, length, length)]
    load = core.loads[0]
    assert load['offset'] >= core.phdrs[0]['offset'] + core.phdrs[0]['filesz']
    assert core.size == load['offset'] + length
    assert core.read_at(load['offset'], length) == mem.data[begin:begin + length]
    assert q.cmd('query-dump') == {'status': 'completed', 'completed': length, 'total': length}
    ev = q.wait_event('DUMP_COMPLETED', timeout=5)
    assert ev['data']['result'] == {'total': length, 'status': 'completed', 'completed': length}
    (d / 'filt.elf').unlink()


def test_filter_one_byte(paused):
    q, d, mem = paused['q'], paused['dir'], paused['mem']
    dump(q, d / 'one.elf', begin=4096, length=1)
    assert q.cmd('query-dump') == {'status': 'completed', 'completed': 1, 'total': 1}
    core = ElfCore(d / 'one.elf')
    assert [(p['paddr'], p['filesz'], p['memsz']) for p in core.loads] == [(4096, 1, 1)]
    assert core.size == core.loads[0]['offset'] + 1
    assert core.read_at(core.loads[0]['offset'], 1) == mem.data[4096:4097]
    assert_no_warnings(run_tool(['readelf', '-h', '-l', '-n', '-W', str(d / 'one.elf')]))


def test_filter_past_ram_end_is_clamped(paused):
    q, d = paused['q'], paused['dir']
    dump(q, d / 'tail.elf', begin=MEM - 2 * PAGE, length=16 * PAGE)
    core = ElfCore(d / 'tail.elf')
    assert [(p['paddr'], p['filesz'], p['memsz']) for p in core.loads] == \
        [(MEM - 2 * PAGE, 2 * PAGE, 2 * PAGE)]
    assert q.cmd('query-dump')['total'] == 2 * PAGE


def test_paging(paused):
    """paging=true: virtual PT_LOADs whose bytes are guest RAM at p_paddr, readable by
    gdb at p_vaddr."""
    q, d, mem = paused['q'], paused['dir'], paused['mem']
    reply = q.execute('dump-guest-memory', {'paging': True,
                                            'protocol': f"file:{d / 'pg.elf'}"})
    assert status(q) == 'paused'
    assert reply == {'return': {}}
    path = d / 'pg.elf'
    assert_no_warnings(run_tool(['readelf', '-h', '-l', '-n', '-W', str(path)]))
    core = ElfCore(path)
    assert core.phdrs[0]['type'] == PT_NOTE and len(core.notes) == 2 * SMP
    assert core.loads and all(p['align'] == 0 and p['filesz'] <= p['memsz'] for p in core.loads)
    # as QEMU: only mappings of RAM, each backed by the file
    assert all(p['paddr'] + p['memsz'] <= MEM and p['filesz'] == p['memsz'] for p in core.loads)
    probe = None
    for p in core.loads:
        step = max(PAGE, (p['filesz'] // 64) & ~(PAGE - 1))
        for rel in list(range(0, p['filesz'] - PAGE + 1, step)) + [p['filesz'] - PAGE]:
            if rel < 0 or p['paddr'] + rel + PAGE > MEM:
                continue
            assert core.read_at(p['offset'] + rel, PAGE) == \
                mem.page((p['paddr'] + rel) // PAGE), (hex(p['vaddr']), hex(rel))
            if probe is None and not mem.zero((p['paddr'] + rel) // PAGE):
                probe = (p['vaddr'] + rel, p['paddr'] + rel)
    assert probe is not None
    if probe:
        vaddr, paddr = probe
        proc = run_tool([gdb_binary(), '-nx', '-batch', '-ex', 'set architecture i386:x86-64',
                         '-ex', f'x/2gx {vaddr:#x}', '-c', str(path)])
        m = re.search(r'^0x[0-9a-f]+:\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)', proc.stdout, re.M)
        words = [int(w, 16) for w in m.groups()] if m else None
        assert words == list(struct.unpack_from('<2Q', mem.data, paddr)), proc.stdout + proc.stderr
    path.unlink()


# ---------------------------------------------------------------- RAM above 4 GiB

def test_split_ram_two_loads(make_vm, tmp_path):
    vm = make_vm(mem='3584M', accel='none')
    q = vm.qmp
    q.cmd('stop')
    dump(q, tmp_path / 'big.elf')
    core = ElfCore(tmp_path / 'big.elf')
    assert core.phdrs[0]['type'] == PT_NOTE
    assert [(p['paddr'], p['vaddr'], p['filesz'], p['memsz'], p['align']) for p in core.loads] == \
        [(0, 0, 3 << 30, 3 << 30, 0), (1 << 32, 1 << 32, 512 << 20, 512 << 20, 0)]
    assert core.loads[1]['offset'] == core.loads[0]['offset'] + (3 << 30)
    assert core.size == core.loads[1]['offset'] + (512 << 20)
    assert_no_warnings(run_tool(['readelf', '-h', '-l', '-n', '-W', str(tmp_path / 'big.elf')]))
    st = os.stat(tmp_path / 'big.elf')
    assert st.st_blocks * 512 < 64 << 20      # almost all zero: holes
    # libkdumpfile reads across both blocks and agrees with pmemsave
    k = kdumpfile_open(tmp_path / 'big.elf')
    for addr in (0, 0x1000, 0x8000, (3 << 30) - PAGE, 1 << 32, (1 << 32) + (512 << 20) - PAGE):
        out = tmp_path / 'p'
        assert q.hmp('pmemsave %d %d %s' % (addr, PAGE, out)).strip() == ''
        assert kdumpfile_page(k, addr // PAGE) == out.read_bytes(), hex(addr)
    # a filter across the hole clips both blocks
    begin, length = (3 << 30) - 0x3000, 0x40000000 + 0x5000
    dump(q, tmp_path / 'hole.elf', begin=begin, length=length)
    hole = ElfCore(tmp_path / 'hole.elf')
    assert [(p['paddr'], p['filesz']) for p in hole.loads] == \
        [((3 << 30) - 0x3000, 0x3000), (1 << 32, 0x2000)]
    assert hole.loads[1]['offset'] == hole.loads[0]['offset'] + 0x3000
    assert q.cmd('query-dump')['total'] == 0x5000


# ---------------------------------------------------------------- run state and events

def test_dump_of_running_vm_stops_and_resumes(make_vm, tmp_path):
    vm = make_vm(mem='128M')
    q = vm.qmp
    assert status(q) == 'running'
    q.events.clear()
    dump(q, tmp_path / 'run.elf')
    # as QEMU: STOP, DUMP_COMPLETED and RESUME all come before the reply
    names = [n for n in event_names(q) if n in ('STOP', 'RESUME', 'DUMP_COMPLETED')]
    assert names == ['STOP', 'DUMP_COMPLETED', 'RESUME']
    drain(q, 0.3)
    names = [n for n in event_names(q) if n in ('STOP', 'RESUME', 'DUMP_COMPLETED')]
    assert names == ['STOP', 'DUMP_COMPLETED', 'RESUME']
    assert status(q) == 'running'
    assert_no_warnings(run_tool(['readelf', '-h', '-l', '-n', '-W', str(tmp_path / 'run.elf')]))


def test_dump_of_paused_vm_stays_paused(paused):
    q, d = paused['q'], paused['dir']
    q.events.clear()
    dump(q, d / 'p.elf')
    drain(q, 0.3)
    assert event_names(q) == ['DUMP_COMPLETED']
    assert status(q) == 'paused'
    assert files_equal(d / 'p.elf', paused['core']) == (True, None)
    (d / 'p.elf').unlink()


def test_detached_progress_to_file(make_vm, tmp_path):
    """Detached dump of a big guest: {} at once, completed rises to total, one DUMP_COMPLETED,
    STOP/RESUME around it, status save-vm while it runs."""
    if kvm_available():
        vm, size = make_vm(mem='1G', smp=2), 1 << 30
    else:
        vm, size = make_vm(mem='3584M', accel='none'), 3584 << 20
    q = vm.qmp
    assert status(q) == 'running'
    q.events.clear()
    t = time.time()
    assert q.cmd('dump-guest-memory', paging=False, protocol=f'file:{tmp_path / "big.elf"}',
                 detach=True) == {}
    assert time.time() - t < 2.0
    seen = []
    while True:
        st = status(q)              # first: if the dump is still active afterwards, st was
        p = q.cmd('query-dump')     # taken while it ran
        seen.append((p['status'], p['completed'], p['total'], st))
        if p['status'] != 'active':
            break
        time.sleep(0.005)
    active = [s for s in seen if s[0] == 'active']
    completed = [s[1] for s in seen]
    assert completed == sorted(completed), 'completed went backwards'
    assert all(s[2] == size for s in seen)
    assert all(s[3] == 'save-vm' for s in active), active
    assert seen[-1][:3] == ('completed', size, size)
    ev = q.wait_event('DUMP_COMPLETED', timeout=60)
    assert ev['data'] == {'result': {'total': size, 'status': 'completed', 'completed': size}}
    drain(q, 0.3)
    assert 'DUMP_COMPLETED' not in event_names(q)
    names = event_names(q)
    assert names.count('STOP') == 1 and names.count('RESUME') == 1
    assert status(q) == 'running'
    core = ElfCore(tmp_path / 'big.elf')
    assert sum(p['filesz'] for p in core.loads) == size


def test_detached_dump_gated_pipe(make_vm, tmp_path):
    """A detached dump that cannot finish until the reader reads: status active, a second
    dump refused, monitor answering, save-vm; then it completes once and the VM resumes."""
    vm = make_vm(mem='128M', smp=SMP)
    q = vm.qmp
    assert status(q) == 'running'
    reader = PipeReader(gated=True)
    try:
        reader.hand_to(q, 'slow')
        q.events.clear()
        assert q.cmd('dump-guest-memory', paging=False, protocol='fd:slow', detach=True) == {}
        p = q.cmd('query-dump')
        assert p['status'] == 'active' and p['total'] == MEM and p['completed'] < MEM
        assert status(q) == 'save-vm'
        err = dump_error(q, protocol=f'file:{tmp_path / "second.elf"}')
        assert err == {'class': 'GenericError', 'desc': 'There is a dump in process, please wait.'}
        assert not (tmp_path / 'second.elf').exists()
        out = q.hmp('info dump')
        assert re.fullmatch(r'Status: active\r?\nFinished: \d+\.\d\d %\r?\n', out), out
        assert q.cmd('query-dump')['status'] == 'active'
        ev, data = reader.finish(q)
    finally:
        reader.close()
    assert ev['data'] == {'result': {'total': MEM, 'status': 'completed', 'completed': MEM}}
    drain(q, 0.3)
    names = event_names(q)
    assert 'DUMP_COMPLETED' not in names
    assert names.count('STOP') == 1 and names.count('RESUME') == 1
    assert names.index('STOP') < names.index('RESUME')
    assert status(q) == 'running'
    assert q.cmd('query-dump') == {'status': 'completed', 'completed': MEM, 'total': MEM}
    core = ElfCore(data=data)
    assert len(core.notes) == 2 * SMP
    assert core.size == core.loads[0]['offset'] + MEM


# ---------------------------------------------------------------- HMP

def test_hmp_dump_guest_memory(paused):
    q, d = paused['q'], paused['dir']
    q.events.clear()
    out = q.hmp(f'dump-guest-memory {d / "hmp.elf"}')
    assert out.strip() == ''
    ev = q.wait_event('DUMP_COMPLETED', timeout=30)
    assert ev['data']['result']['status'] == 'completed'
    assert files_equal(d / 'hmp.elf', paused['core']) == (True, None)
    assert q.hmp('info dump').splitlines() == ['Status: completed']
    # begin/length
    out = q.hmp(f'dump-guest-memory {d / "hmp-f.elf"} 0x400000 0x2000')
    assert out.strip() == ''
    core = ElfCore(d / 'hmp-f.elf')
    assert [(p['paddr'], p['filesz']) for p in core.loads] == [(0x400000, 0x2000)]
    assert core.read_at(core.loads[0]['offset'], 0x2000) == \
        paused['mem'].data[0x400000:0x402000]
    # detached
    q.events.clear()
    out = q.hmp(f'dump-guest-memory -d {d / "hmp-d.elf"}')
    assert out.strip() == ''
    ev = q.wait_event('DUMP_COMPLETED', timeout=60)
    assert ev['data']['result'] == {'total': MEM, 'status': 'completed', 'completed': MEM}
    assert q.hmp('info dump').splitlines() == ['Status: completed']
    assert files_equal(d / 'hmp-d.elf', paused['core']) == (True, None)
    assert status(q) == 'paused'
    for f in ('hmp.elf', 'hmp-f.elf', 'hmp-d.elf'):
        (d / f).unlink()


# ---------------------------------------------------------------- odds and ends

def test_query_dump_before_any_dump(make_vm):
    q = make_vm(mem='128M', accel='none').qmp
    assert q.cmd('query-dump') == {'status': 'none', 'completed': 0, 'total': 0}
    assert q.hmp('info dump').splitlines() == ['Status: none']


def test_file_is_truncated_and_owner_only(paused):
    q, d = paused['q'], paused['dir']
    path = d / 'old.elf'
    path.write_bytes(b'x' * (1 << 20))
    os.chmod(path, 0o644)
    dump(q, path, begin=0x400000, length=PAGE)
    core = ElfCore(path)
    assert core.size == core.loads[0]['offset'] + PAGE
    assert os.path.getsize(path) == core.size
    new = d / 'new.elf'
    dump(q, new, begin=0x400000, length=PAGE)
    assert os.stat(new).st_mode & 0o077 == 0, oct(os.stat(new).st_mode)
    path.unlink()
    new.unlink()


def test_length_minus_one_dumps_to_the_end(paused):
    """QEMU 7.2 accepts length -1 (begin 0) and dumps everything."""
    q, d = paused['q'], paused['dir']
    dump(q, d / 'all.elf', begin=0, length=-1)
    assert q.cmd('query-dump') == {'status': 'completed', 'completed': MEM, 'total': MEM}
    assert files_equal(d / 'all.elf', paused['core']) == (True, None)
    (d / 'all.elf').unlink()


def test_elf_to_a_socket(paused):
    """fd: may be a stream socket; the bytes equal the file dump."""
    data = read_socket_dump(paused['q'], 'elf', 'sock')
    with open(paused['core'], 'rb') as f:
        assert data == f.read()


@pytest.mark.parametrize('output', ['file', 'blocked-pipe'])
def test_quit_during_a_detached_dump(make_vm, tmp_path, output):
    """quit while a detached dump runs (to a file), or is stuck writing to a pipe nobody
    reads: minivm answers quit and exits."""
    if output == 'file' and kvm_available():
        vm = make_vm(mem='1G', smp=2)
    else:
        vm = make_vm(mem='128M' if output != 'file' else '3584M', accel='none')
    q = vm.qmp
    reader = PipeReader(gated=True)
    try:
        if output == 'file':
            protocol = f'file:{tmp_path / "q.elf"}'
        else:
            reader.hand_to(q, 'stuck')
            protocol = 'fd:stuck'
        assert q.cmd('dump-guest-memory', paging=False, protocol=protocol, detach=True) == {}
        assert q.cmd('quit') == {}
        try:
            vm.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            vm.proc.kill()
            vm.proc.wait()
            pytest.fail('minivm did not exit within 10 s of quit during a detached dump')
    finally:
        reader.close()
        reader.data()


def test_prelaunch_dump_stays_in_prelaunch(make_vm, tmp_path):
    q = make_vm('-S', mem='128M', accel='none').qmp
    assert status(q) == 'prelaunch'
    q.events.clear()
    dump(q, tmp_path / 'pre.elf')
    drain(q, 0.2)
    assert event_names(q) == ['DUMP_COMPLETED']
    assert status(q) == 'prelaunch'


def test_four_vcpus_and_a_second_client(make_vm, tmp_path):
    """One PRSTATUS (pr_pid 1..4) then one QEMU note per vCPU; every QMP client gets the
    events."""
    vm = make_vm(mem='128M', smp=4, accel='none', extra_qmp=1)
    other = vm.connect(vm.extra[0])
    try:
        regs = hmp_registers(vm.qmp)
        dump(vm.qmp, tmp_path / 'four.elf')
        drain(other, 0.3)
        assert [n for n in event_names(other) if n != 'SHUTDOWN'] == \
            ['STOP', 'DUMP_COMPLETED', 'RESUME']
    finally:
        other.close()
    core = ElfCore(tmp_path / 'four.elf')
    assert [(n['name'], n['type']) for n in core.notes] == [('CORE', 1)] * 4 + [('QEMU', 0)] * 4
    for i in range(4):
        pr = prstatus_regs(core.notes[i]['desc'])
        assert pr['pid'] == i + 1
        assert (pr['rsp'], pr['rdi']) == (regs[i]['RSP'], regs[i]['RDI'])
    threads, _ = gdb_threads(tmp_path / 'four.elf')
    assert sorted(threads) == [1, 2, 3, 4]


def core_of_mem_file(make_vm, tmp_path, size, zero_below, want=None, fmt='elf'):
    """minivm's dump (ELF unless fmt says) of a paused -mem-path guest of make_mem_file
    pages (its pmemsave to `want` if given)."""
    make_mem_file(tmp_path / 'ram', size, zero_below=zero_below)
    vm = make_vm('-mem-path', str(tmp_path / 'ram'), mem=f'{size >> 20}M', accel='none')
    vm.qmp.cmd('stop')
    core = tmp_path / f'core.{fmt}'
    dump(vm.qmp, core, fmt)
    if want:
        pmemsave(vm.qmp, want, size)
    vm.close()
    return core


@pytest.mark.parametrize('fmt', ['elf', 'kdump-raw-zlib'])
def test_restore_over_a_used_mem_path_file(make_vm, tmp_path, fmt):
    """-load-vmcore into -mem-path RAM whose file already holds data: the restored RAM is
    the vmcore's, also where the ELF has holes (zero runs of 256 KiB or more) and where
    its pages are zero (in a kdump file: the shared zero page) — nothing of the file's
    old content shows through."""
    size = 32 << 20
    core = core_of_mem_file(make_vm, tmp_path, size, 8 << 20, want=tmp_path / 'want', fmt=fmt)
    if fmt == 'elf':
        assert os.stat(core).st_blocks * 512 < os.path.getsize(core) - (4 << 20)   # holes
    (tmp_path / 'old').write_bytes(b'\xaa' * size)
    vm2 = make_vm('-load-vmcore', str(core), '-mem-path', str(tmp_path / 'old'), mem='32M',
                  accel='none')
    pmemsave(vm2.qmp, tmp_path / 'got', size)
    assert files_equal(tmp_path / 'got', tmp_path / 'want') == (True, None)


def test_dump_reads_no_untouched_page(make_vm, tmp_path):
    """A restored guest keeps the vmcore's zero pages untouched (absent). ELF dumps of it, to
    a file and to a socket, write those pages from a block of zeros instead of reading them
    from guest RAM: on some kernels (this machine's 6.18) reading an untouched anonymous page
    allocates it, and a dump would grow the VM by all its zero pages (25 MiB here; 400 MiB
    of a 1 GiB guest filled like the demo guest)."""
    core = core_of_mem_file(make_vm, tmp_path, 64 << 20, 4 << 20)
    again = tmp_path / 'again.elf'
    streamed = None
    # one restored guest each, so that neither dump can hide what the other touched
    for what in ('file', 'socket'):
        restored = make_vm('-load-vmcore', str(core), accel='none')
        before = vm_rss_kib(restored.proc.pid, 'RssAnon')
        if what == 'file':
            dump(restored.qmp, again)
        else:
            streamed = read_socket_dump(restored.qmp)
        assert_rss_flat(before, vm_rss_kib(restored.proc.pid, 'RssAnon'),
                        f'ELF dump to a {what}', margin_kib=8 * 1024)
        restored.close()
    # the same bytes: holes and zero blocks read back as the zeros they stand for
    assert files_equal(again, core) == (True, None)
    with open(again, 'rb') as f:
        assert f.read() == streamed


def test_mem_path_file_keeps_what_lies_past_the_first_block(make_vm, tmp_path):
    """-m above 3 GiB has two RAM blocks (below and above 4 GiB), one after the other in the
    -mem-path file. A file that already holds all of RAM keeps its contents: setting up the
    first block once cut the file to 3 GiB, so the high block read zeros. (Sparse file: no
    disk is used.)"""
    size = 4608 << 20                      # 3 GiB at 0, 1.5 GiB at 4 GiB
    mark = 3584 << 20                      # file offset -> guest-physical 4.5 GiB
    page = bytes(range(256)) * (PAGE // 256)
    ram = tmp_path / 'ram'
    with open(ram, 'wb') as f:
        f.truncate(size)
        f.seek(mark)
        f.write(page)
    vm = make_vm('-mem-path', str(ram), mem='4608M', accel='none')
    vm.qmp.cmd('stop')
    assert os.path.getsize(ram) == size
    pmemsave(vm.qmp, tmp_path / 'got', PAGE, addr=mark - (3 << 30) + (4 << 30))
    assert (tmp_path / 'got').read_bytes() == page
