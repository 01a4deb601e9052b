/* A 16550-style UART at 0x3f8: transmit only, output to the -serial sink. */
#ifndef MINIVM_SERIAL_H
#define MINIVM_SERIAL_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct Serial Serial;

#define SERIAL_BASE 0x3f8
#define SERIAL_PORTS 8

/* spec: "stdio", "none", "file:PATH" (NULL means none). */
Serial *serial_new(const char *spec, GError **errp);
void serial_free(Serial *s);
void serial_io_write(Serial *s, uint16_t offset, uint8_t value);
uint8_t serial_io_read(Serial *s, uint16_t offset);

#endif
