/*
 * Optional C accelerator for the two byte loops of the WebSocket core:
 * masking (RFC 6455 section 5.3) and incremental UTF-8 validation (section 8.1).
 *
 * wsdaemon/core/speedups.py picks these up when the extension was built and
 * falls back to pure Python otherwise (or when WSDAEMON_NO_SPEEDUPS=1); both
 * give identical results, which the tests check.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* XOR n bytes of in with the 4-byte key, starting phase bytes into the key. */
static void
mask_bytes(unsigned char *out, const unsigned char *in, Py_ssize_t length, const unsigned char *key, Py_ssize_t phase)
{
    unsigned char pattern[8];
    for (int k = 0; k < 8; k++) {
        pattern[k] = key[(k + phase) & 3];
    }
    uint64_t wide;
    memcpy(&wide, pattern, 8);
    Py_ssize_t i = 0;
    for (; i + 8 <= length; i += 8) {
        uint64_t chunk;
        memcpy(&chunk, in + i, 8);
        chunk ^= wide;
        memcpy(out + i, &chunk, 8);
    }
    for (; i < length; i++) {
        out[i] = in[i] ^ pattern[i & 7];
    }
}

/* apply_mask(data, mask) -> bytes: XOR data with the 4-byte mask repeated. */
static PyObject *
apply_mask(PyObject *self, PyObject *args)
{
    Py_buffer data, mask;
    if (!PyArg_ParseTuple(args, "y*y*", &data, &mask)) {
        return NULL;
    }
    PyObject *result = NULL;
    if (mask.len != 4) {
        PyErr_SetString(PyExc_ValueError, "mask must be 4 bytes");
    }
    else if ((result = PyBytes_FromStringAndSize(NULL, data.len)) != NULL) {
        mask_bytes((unsigned char *)PyBytes_AS_STRING(result), (const unsigned char *)data.buf, data.len,
                   (const unsigned char *)mask.buf, 0);
    }
    PyBuffer_Release(&data);
    PyBuffer_Release(&mask);
    return result;
}

/*
 * unmask_join(pieces, mask) -> bytes: the pieces of one masked payload, in
 * order, joined and unmasked in a single pass (no joined copy in between).
 */
static PyObject *
unmask_join(PyObject *self, PyObject *args)
{
    PyObject *pieces;
    Py_buffer mask;
    if (!PyArg_ParseTuple(args, "Oy*", &pieces, &mask)) {
        return NULL;
    }
    PyObject *result = NULL;
    PyObject *seq = PySequence_Fast(pieces, "pieces must be a sequence");
    Py_ssize_t count = seq != NULL ? PySequence_Fast_GET_SIZE(seq) : 0;
    Py_buffer *views = seq != NULL ? PyMem_Calloc(count ? count : 1, sizeof(Py_buffer)) : NULL;
    Py_ssize_t held = 0, total = 0;
    if (seq != NULL && views == NULL) {
        PyErr_NoMemory();
    }
    else if (seq != NULL && mask.len != 4) {
        PyErr_SetString(PyExc_ValueError, "mask must be 4 bytes");
    }
    else if (seq != NULL) {
        for (; held < count; held++) {
            if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(seq, held), &views[held], PyBUF_SIMPLE) < 0) {
                break;
            }
            total += views[held].len;
        }
        if (held == count && (result = PyBytes_FromStringAndSize(NULL, total)) != NULL) {
            unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
            Py_ssize_t position = 0;
            for (Py_ssize_t i = 0; i < count; i++) {
                mask_bytes(out + position, (const unsigned char *)views[i].buf, views[i].len,
                           (const unsigned char *)mask.buf, position & 3);
                position += views[i].len;
            }
        }
    }
    for (Py_ssize_t i = 0; i < held; i++) {
        PyBuffer_Release(&views[i]);
    }
    PyMem_Free(views);
    Py_XDECREF(seq);
    PyBuffer_Release(&mask);
    return result;
}

/*
 * UTF-8 validation as a state machine over the byte ranges of the Unicode
 * standard, Table 3-7 (well-formed UTF-8 byte sequences). The state says
 * what the next byte must be; it rejects at the first byte that cannot
 * continue a valid sequence, which is what "fail fast" needs.
 */
enum {
    ACCEPT = 0,   /* between characters */
    CONT1,        /* one 80..BF byte to go */
    CONT2,        /* two 80..BF bytes to go */
    CONT3,        /* three 80..BF bytes to go */
    E0_SECOND,    /* after E0: A0..BF, then one more */
    ED_SECOND,    /* after ED: 80..9F, then one more */
    F0_SECOND,    /* after F0: 90..BF, then two more */
    F4_SECOND,    /* after F4: 80..8F, then two more */
    REJECT = -1
};

static int
utf8_step(int state, unsigned char byte)
{
    switch (state) {
    case ACCEPT:
        if (byte < 0x80) return ACCEPT;
        if (byte >= 0xC2 && byte <= 0xDF) return CONT1;
        if (byte == 0xE0) return E0_SECOND;
        if ((byte >= 0xE1 && byte <= 0xEC) || byte == 0xEE || byte == 0xEF) return CONT2;
        if (byte == 0xED) return ED_SECOND;
        if (byte == 0xF0) return F0_SECOND;
        if (byte >= 0xF1 && byte <= 0xF3) return CONT3;
        if (byte == 0xF4) return F4_SECOND;
        return REJECT;
    case CONT1:
        return (byte >= 0x80 && byte <= 0xBF) ? ACCEPT : REJECT;
    case CONT2:
        return (byte >= 0x80 && byte <= 0xBF) ? CONT1 : REJECT;
    case CONT3:
        return (byte >= 0x80 && byte <= 0xBF) ? CONT2 : REJECT;
    case E0_SECOND:
        return (byte >= 0xA0 && byte <= 0xBF) ? CONT1 : REJECT;
    case ED_SECOND:
        return (byte >= 0x80 && byte <= 0x9F) ? CONT1 : REJECT;
    case F0_SECOND:
        return (byte >= 0x90 && byte <= 0xBF) ? CONT2 : REJECT;
    case F4_SECOND:
        return (byte >= 0x80 && byte <= 0x8F) ? CONT2 : REJECT;
    default:
        return REJECT;
    }
}

/* utf8_validate(state, data) -> state: 0 complete, >0 inside a character, -1 invalid. */
static PyObject *
utf8_validate(PyObject *self, PyObject *args)
{
    int state;
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "iy*", &state, &data)) {
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)data.buf;
    Py_ssize_t length = data.len, i = 0;
    while (i < length && state != REJECT) {
        if (state == ACCEPT) {
            /* ASCII runs, eight bytes at a time. */
            while (i + 8 <= length) {
                uint64_t chunk;
                memcpy(&chunk, p + i, 8);
                if (chunk & 0x8080808080808080ULL) break;
                i += 8;
            }
            if (i >= length) break;
        }
        state = utf8_step(state, p[i++]);
    }
    PyBuffer_Release(&data);
    return PyLong_FromLong(state);
}

static PyMethodDef methods[] = {
    {"apply_mask", apply_mask, METH_VARARGS, "XOR data with a 4-byte mask repeated (RFC 6455 5.3)."},
    {"unmask_join", unmask_join, METH_VARARGS, "Join the pieces of one masked payload and unmask them in one pass."},
    {"utf8_validate", utf8_validate, METH_VARARGS,
     "Advance a UTF-8 validation state over data: 0 complete, >0 mid-character, -1 invalid."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "wsdaemon.core._speedups", "C accelerator for masking and UTF-8 validation.", -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&module);
}
