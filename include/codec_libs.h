/* The page codecs' libraries, as this build has them (config.h: CONFIG_LZO, CONFIG_SNAPPY,
 * CONFIG_ZSTD); zlib is always there. */
#ifndef MINIVM_CODEC_LIBS_H
#define MINIVM_CODEC_LIBS_H

#include "config.h"

#include <zlib.h>
#if CONFIG_LZO
#include <lzo/lzo1x.h>
#endif
#if CONFIG_SNAPPY
#include <snappy-c.h>
#endif
#if CONFIG_ZSTD
#include <zstd.h>
#endif

#endif
