/* The tile operations in portable C, one lane at a time, for processors
 * without AVX2 (and as a third, independent path in the tests). The blocks
 * are wide enough for the compiler to vectorize what the target allows. */
#include <math.h>

typedef float vf;
typedef int vmask;

#define L 1
#define QK_W 8
#define PV_W 8
#define ISA_NAME "scalar"
#define ISA_SYM chill_cpu_isa_scalar

#define V_ZERO() 0.0f
#define V_SET1(x) (x)
#define V_LOAD(p) (*(p))
#define V_STORE(p, v) (*(p) = (v))
#define V_FMA(a, b, c) ((a) * (b) + (c))
#define V_MUL(a, b) ((a) * (b))
#define V_ADD(a, b) ((a) + (b))
#define V_SUB(a, b) ((a) - (b))
#define V_MAX(a, b) ((a) > (b) ? (a) : (b))
#define V_MASK(n) ((vmask)(n))
#define V_LOADM(p, m) ((void)(m), *(p))
#define V_EXP2(x) exp2f(x)

#include "tile_impl.h"
