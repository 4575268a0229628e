/* plot: an SVG picture of a mask over n positions, to see what a spec means
 * and how the kernels tile it. Queries run down, keys across. Attended pairs
 * are filled (runs of a row as one rect, equal rows merged into one band, so
 * n = 1024 stays a small file); the first and last key of each query's
 * k_range are drawn as two polylines; query x key tiles are outlined as the
 * kernels see them: full tiles (inside full_k_range, no predicate) in dark,
 * partial tiles (inside the tile's key range, predicate applied) lightly,
 * skipped tiles left blank. A title gives the canonical spec, a legend the
 * colours and the tile counts. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "spec.h"

#define GRID_PX 720.0 /* the n x n grid's side in pixels */
#define LEFT_PX 70.0
#define TOP_PX 76.0
#define RIGHT_PX 30.0
#define LEGEND_PX 118.0

#define COLOR_ATTENDED "#9ebce8"
#define COLOR_LO "#d6452b"
#define COLOR_HI "#1e9e4a"
#define COLOR_FULL "#1c2e52"
#define COLOR_PARTIAL "#8a8a8a"

typedef struct plot {
    FILE *f;
    const chill_mask *m;
    int64_t n, tile;
    double s; /* pixels per position */
    int64_t full, partial, skipped, pairs;
} plot;

typedef struct run {
    int64_t lo, hi;
} run;

static double px_x(const plot *p, double k) { return LEFT_PX + k * p->s; }
static double px_y(const plot *p, double q) { return TOP_PX + q * p->s; }

/* The runs of keys query q attends; returns how many. */
static int64_t row_runs(const plot *p, int64_t q, run *out) {
    int64_t count = 0;
    for (int64_t k = 0; k < p->n; k++) {
        if (!chill_mask_allows(p->m, q, k))
            continue;
        if (count > 0 && out[count - 1].hi == k - 1)
            out[count - 1].hi = k;
        else
            out[count++] = (run){k, k};
    }
    return count;
}

static void emit_band(plot *p, const run *runs, int64_t count, int64_t q0, int64_t q1) {
    for (int64_t i = 0; i < count; i++) {
        fprintf(p->f, "<rect x=\"%" PRId64 "\" y=\"%" PRId64 "\" width=\"%" PRId64 "\" height=\"%" PRId64 "\"/>\n",
                runs[i].lo, q0, runs[i].hi - runs[i].lo + 1, q1 - q0 + 1);
        p->pairs += (runs[i].hi - runs[i].lo + 1) * (q1 - q0 + 1);
    }
}

/* Attended pairs, in position units scaled onto the grid. */
static chill_status draw_pairs(plot *p, chill_error *err) {
    run *cur = malloc((size_t)p->n * sizeof *cur), *band = malloc((size_t)p->n * sizeof *band);
    if (cur == NULL || band == NULL) {
        free(cur);
        free(band);
        return chill_fail(err, CHILL_ERR_NOMEM, "plot: no memory for %" PRId64 " runs", p->n);
    }
    fprintf(p->f, "<g fill=\"%s\" shape-rendering=\"crispEdges\" transform=\"translate(%g %g) scale(%g)\">\n",
            COLOR_ATTENDED, LEFT_PX, TOP_PX, p->s);
    int64_t band_count = 0, band_q0 = 0;
    for (int64_t q = 0; q < p->n; q++) {
        int64_t count = row_runs(p, q, cur);
        if (q > 0 && count == band_count && memcmp(cur, band, (size_t)count * sizeof *cur) == 0)
            continue;
        emit_band(p, band, band_count, band_q0, q - 1);
        memcpy(band, cur, (size_t)count * sizeof *cur);
        band_count = count;
        band_q0 = q;
    }
    emit_band(p, band, band_count, band_q0, p->n - 1);
    fprintf(p->f, "</g>\n");
    free(cur);
    free(band);
    return CHILL_OK;
}

/* The keys a query tile's kernel visits: from the first key of its first
 * non-empty row to the last key of its last (ranges rise with q). */
static chill_range tile_keys(const plot *p, int64_t q0, int64_t q1) {
    chill_range r = chill_range_empty();
    for (int64_t q = q0; q <= q1; q++) {
        chill_range k = chill_mask_k_range(p->m, q, p->n);
        if (chill_range_is_empty(k))
            continue;
        r.lo = chill_range_is_empty(r) ? k.lo : r.lo;
        r.hi = k.hi;
    }
    return r;
}

enum { TILE_SKIPPED, TILE_PARTIAL, TILE_FULL };

/* How the kernels treat the tile of queries [q0, q1] x keys [k0, k1]. */
static int tile_kind(const plot *p, int64_t q0, int64_t q1, int64_t k0, int64_t k1) {
    chill_range keys = tile_keys(p, q0, q1), full = chill_mask_full_k_range(p->m, q0, q1, p->n);
    if (chill_range_is_empty(keys) || k1 < keys.lo || k0 > keys.hi)
        return TILE_SKIPPED;
    return !chill_range_is_empty(full) && full.lo <= k0 && k1 <= full.hi ? TILE_FULL : TILE_PARTIAL;
}

/* The outlines of the tiles of one kind (partial ones first, so full ones
 * are drawn over them); counts them. */
static void draw_tiles(plot *p, int kind) {
    static const char *const style[] = {
        [TILE_PARTIAL] = "stroke=\"" COLOR_PARTIAL "\" stroke-width=\"0.7\" stroke-dasharray=\"3 2\"",
        [TILE_FULL] = "stroke=\"" COLOR_FULL "\" stroke-width=\"1.6\"",
    };
    int64_t count = 0;
    fprintf(p->f, "<g fill=\"none\" %s>\n", style[kind]);
    for (int64_t q0 = 0; q0 < p->n; q0 += p->tile) {
        int64_t q1 = chill_min64(q0 + p->tile - 1, p->n - 1);
        for (int64_t k0 = 0; k0 < p->n; k0 += p->tile) {
            int64_t k1 = chill_min64(k0 + p->tile - 1, p->n - 1);
            if (tile_kind(p, q0, q1, k0, k1) != kind)
                continue;
            count++;
            fprintf(p->f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\"/>\n", px_x(p, (double)k0),
                    px_y(p, (double)q0), (double)(k1 - k0 + 1) * p->s, (double)(q1 - q0 + 1) * p->s);
        }
    }
    fprintf(p->f, "</g>\n");
    *(kind == TILE_FULL ? &p->full : &p->partial) = count;
}

/* One end of every query's k_range as a staircase along the cell edges,
 * broken at empty rows. */
static void draw_curve(const plot *p, bool hi, const char *color) {
    bool open = false;
    for (int64_t q = 0; q < p->n; q++) {
        chill_range r = chill_mask_k_range(p->m, q, p->n);
        if (chill_range_is_empty(r)) {
            if (open)
                fputs("\"/>\n", p->f);
            open = false;
            continue;
        }
        if (!open)
            fprintf(p->f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.6\" points=\"", color);
        open = true;
        double x = px_x(p, hi ? (double)r.hi + 1 : (double)r.lo);
        fprintf(p->f, "%.1f,%.1f %.1f,%.1f ", x, px_y(p, (double)q), x, px_y(p, (double)q + 1));
    }
    if (open)
        fputs("\"/>\n", p->f);
}

static void draw_frame(const plot *p, const char *spec) {
    double g = GRID_PX;
    fprintf(p->f, "<text x=\"%g\" y=\"26\" font-size=\"18\" font-weight=\"bold\">%s</text>\n", LEFT_PX, spec);
    fprintf(p->f, "<text x=\"%g\" y=\"46\" font-size=\"12\" fill=\"#444\">n = %" PRId64 " positions, tiles of %"
            PRId64 "; queries down, keys across</text>\n", LEFT_PX, p->n, p->tile);
    fprintf(p->f, "<text x=\"%g\" y=\"%g\" font-size=\"12\">key k \xe2\x86\x92</text>\n", LEFT_PX + g / 2 - 20,
            TOP_PX - 8);
    fprintf(p->f, "<text font-size=\"12\" transform=\"translate(%g %g) rotate(-90)\">query q \xe2\x86\x93</text>\n",
            LEFT_PX - 28, TOP_PX + g / 2 + 24);
    fprintf(p->f, "<text x=\"%g\" y=\"%g\" font-size=\"11\" text-anchor=\"end\">0</text>\n", LEFT_PX - 4,
            TOP_PX + 10);
    fprintf(p->f, "<text x=\"%g\" y=\"%g\" font-size=\"11\" text-anchor=\"end\">%" PRId64 "</text>\n", LEFT_PX - 4,
            TOP_PX + g, p->n - 1);
    fprintf(p->f, "<text x=\"%g\" y=\"%g\" font-size=\"11\" text-anchor=\"end\">%" PRId64 "</text>\n", LEFT_PX + g,
            TOP_PX - 8, p->n - 1);
    fprintf(p->f, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"#333\"/>\n", LEFT_PX,
            TOP_PX, g, g);
}

static void legend_item(const plot *p, int slot, const char *swatch, const char *label) {
    double x = LEFT_PX + (slot % 3) * 240.0, y = TOP_PX + GRID_PX + 28 + (slot / 3) * 24.0;
    fprintf(p->f, "<g transform=\"translate(%g %g)\">%s<text x=\"30\" y=\"5\" font-size=\"12\">%s</text></g>\n", x, y,
            swatch, label);
}

static void draw_legend(const plot *p) {
    char text[160];
    legend_item(p, 0, "<rect x=\"0\" y=\"-6\" width=\"22\" height=\"12\" fill=\"" COLOR_ATTENDED "\"/>",
                "attended pair (q, k)");
    legend_item(p, 1, "<line x1=\"0\" y1=\"0\" x2=\"22\" y2=\"0\" stroke=\"" COLOR_LO "\" stroke-width=\"2\"/>",
                "k_range(q): first key");
    legend_item(p, 2, "<line x1=\"0\" y1=\"0\" x2=\"22\" y2=\"0\" stroke=\"" COLOR_HI "\" stroke-width=\"2\"/>",
                "k_range(q): last key");
    snprintf(text, sizeof text, "full tile, no predicate: %" PRId64, p->full);
    legend_item(p, 3, "<rect x=\"0\" y=\"-6\" width=\"22\" height=\"12\" fill=\"none\" stroke=\"" COLOR_FULL
                "\" stroke-width=\"1.6\"/>", text);
    snprintf(text, sizeof text, "partial tile, predicate: %" PRId64, p->partial);
    legend_item(p, 4, "<rect x=\"0\" y=\"-6\" width=\"22\" height=\"12\" fill=\"none\" stroke=\"" COLOR_PARTIAL
                "\" stroke-width=\"0.7\" stroke-dasharray=\"3 2\"/>", text);
    snprintf(text, sizeof text, "skipped tile (blank): %" PRId64, p->skipped);
    legend_item(p, 5, "<rect x=\"0\" y=\"-6\" width=\"22\" height=\"12\" fill=\"none\" stroke=\"#ddd\"/>", text);
    fprintf(p->f, "<text x=\"%g\" y=\"%g\" font-size=\"12\" fill=\"#444\">%" PRId64 " of %" PRId64
            " pairs attended (%.1f%%)</text>\n", LEFT_PX, TOP_PX + GRID_PX + 28 + 2 * 24.0 + 4, p->pairs,
            p->n * p->n, 100.0 * (double)p->pairs / (double)(p->n * p->n));
}

static chill_status write_svg(plot *p, chill_error *err) {
    char spec[96];
    chill_mask_format(p->m, spec, sizeof spec);
    double w = LEFT_PX + GRID_PX + RIGHT_PX, h = TOP_PX + GRID_PX + LEGEND_PX;
    fprintf(p->f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" viewBox=\"0 0 %g %g\" "
            "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n", w, h, w, h);
    fprintf(p->f, "<title>%s over %" PRId64 " positions</title>\n", spec, p->n);
    fprintf(p->f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    chill_status s = draw_pairs(p, err);
    if (s != CHILL_OK)
        return s;
    draw_tiles(p, TILE_PARTIAL);
    draw_tiles(p, TILE_FULL);
    int64_t tiles = (p->n + p->tile - 1) / p->tile;
    p->skipped = tiles * tiles - p->full - p->partial;
    draw_curve(p, false, COLOR_LO);
    draw_curve(p, true, COLOR_HI);
    draw_frame(p, spec);
    draw_legend(p);
    fprintf(p->f, "</svg>\n");
    return CHILL_OK;
}

chill_status chill_mask_plot_svg(const chill_mask *m, int64_t n, int tile_size, const char *path, chill_error *err) {
    chill_status s = chill_mask_check(m, err);
    if (s != CHILL_OK)
        return s;
    if (n < 1 || n > CHILL_PLOT_N_MAX)
        return chill_fail(err, CHILL_ERR_INVALID, "plot: n = %" PRId64 " is out of range; accepted: 1 to %d", n,
                          CHILL_PLOT_N_MAX);
    if (tile_size < 1 || tile_size > CHILL_PLOT_N_MAX)
        return chill_fail(err, CHILL_ERR_INVALID, "plot: tile size %d is out of range; accepted: 1 to %d", tile_size,
                          CHILL_PLOT_N_MAX);
    if (path == NULL || path[0] == '\0')
        return chill_fail(err, CHILL_ERR_INVALID, "plot: no output path; accepted: a file name such as mask.svg");
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return chill_fail(err, CHILL_ERR_INVALID, "plot: cannot write \"%s\": %s", path, strerror(errno));
    plot p = {.f = f, .m = m, .n = n, .tile = tile_size, .s = GRID_PX / (double)n};
    s = write_svg(&p, err);
    bool failed = ferror(f) != 0;
    if (fclose(f) != 0)
        failed = true;
    if (s == CHILL_OK && failed)
        return chill_fail(err, CHILL_ERR_INVALID, "plot: writing \"%s\" failed: %s", path, strerror(errno));
    return s;
}
