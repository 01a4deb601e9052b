#!/usr/bin/env python3
"""Turn a file into a C array: embed.py INPUT OUTPUT SYMBOL."""
import sys

src, dst, sym = sys.argv[1:4]
data = open(src, 'rb').read()
with open(dst, 'w') as out:
    out.write('#include <stddef.h>\n')
    out.write(f'const unsigned char {sym}[] = {{\n')
    for i in range(0, len(data), 16):
        out.write(''.join(f'0x{b:02x},' for b in data[i:i + 16]) + '\n')
    out.write('};\n')
    out.write(f'const size_t {sym}_size = sizeof({sym});\n')
