/* The mask registry: one line per mask, the #include of its header. Each
 * mask header ends, after its include guard, with its registry entry
 *     CHILL_MASK(name, nargs, (argument names, in order), (smallest value of each))
 * (the largest is CHILL_MASK_ARG_MAX for all), so including this file with
 * CHILL_MASK defined builds a table over every mask: the enum in mask.h, the
 * table in registry.c, the kernels' dispatch. mask.h includes it first with
 * CHILL_MASK empty, which defines the masks' functions. No include guard: it
 * is meant to be included many times. */
#include "full.h"
#include "causal.h"
#include "sliding_window.h"
#include "chunkwise.h"
#include "prefix_lm.h"
