# chilld build. `make` builds libchill (static and shared), chilld, chillctl and
# libchillclient into build/. Sources are picked up by folder, so a new file
# needs no edit here. CUDA sources build when nvcc is found (CHILL_CUDA=0 turns
# them off); everything else builds without it.
#
#   make            build everything
#   make test       install missing deps, build, run every test that needs no GPU
#   make asan       the same suite under AddressSanitizer + UBSan (build/asan)
#   make tsan       the same suite under ThreadSanitizer (build/tsan): data races
#   make fuzz       libFuzzer over the parsers: requests (HTTP, socket), masks, config (build/fuzz, clang)
#   make run        build and start chilld on 127.0.0.1:8000 (CPU without a GPU)
#   make test-gpu   GPU tests (says so and exits 0 where there is no GPU)
#   make bench-cpu | bench-server | bench-gpu | bench-multi-gpu

BUILD    ?= build
CC       ?= cc
NVCC     ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CHILL_CUDA ?= $(if $(NVCC),1,0)

WARN     = -Wall -Wextra -Werror
CPPFLAGS += -D_GNU_SOURCE -Ikernels -Imasks -Iserver -Iclient/lib -Itests
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 $(WARN) -fPIC -pthread -fno-strict-aliasing
LDLIBS_CHILL = -ljansson -lpthread -lm

ifeq ($(SANITIZE),1)
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif
ifeq ($(SANITIZE),thread)
CFLAGS  += -fsanitize=thread
LDFLAGS += -fsanitize=thread
endif
ifeq ($(SANITIZE),fuzz)
CFLAGS  += -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif

ifeq ($(CHILL_CUDA),1)
CPPFLAGS += -DCHILL_WITH_CUDA -I$(CUDA_HOME)/include
# The GPU architectures compiled in (CUDA_GENCODE="-gencode=arch=compute_90a,code=sm_90a"
# builds for Hopper alone, half the size).
CUDA_GENCODE ?= -gencode=arch=compute_80,code=sm_80 -gencode=arch=compute_90a,code=sm_90a
NVCCFLAGS ?= -O3 -std=c++17 -lineinfo $(CUDA_GENCODE)
NVCCFLAGS += -Xcompiler -fPIC,-Wall,-Werror -Ikernels -Imasks --expt-relaxed-constexpr
LDLIBS_CHILL += -L$(CUDA_HOME)/lib64 -lcudart_static -ldl -lrt -lstdc++
endif

# ---- sources, by folder ------------------------------------------------------
LIB_C    = $(wildcard masks/*.c kernels/*.c kernels/cpu/*.c)
LIB_CU   = $(if $(filter 1,$(CHILL_CUDA)),$(wildcard kernels/cuda/*.cu))
SRV_C    = $(filter-out server/main.c,$(wildcard server/*.c))
CLI_C    = $(wildcard client/lib/*.c)
CTL_C    = $(wildcard client/chillctl/*.c)
UNIT_C   = $(wildcard tests/unit/test_*.c)
TEST_LIB_C = $(wildcard tests/ref/*.c) tests/unit/check_main.c
FUZZ_C   = $(wildcard tests/fuzz/fuzz_*.c)

obj      = $(patsubst %.c,$(BUILD)/obj/%.o,$(filter %.c,$(1))) $(patsubst %.cu,$(BUILD)/obj/%.o,$(filter %.cu,$(1)))
LIB_O    = $(call obj,$(LIB_C) $(LIB_CU))
SRV_O    = $(call obj,$(SRV_C))
CLI_O    = $(call obj,$(CLI_C))

LIBCHILL_A  = $(BUILD)/lib/libchill.a
LIBCHILL_SO = $(BUILD)/lib/libchill.so
LIBCHILLD_A = $(BUILD)/lib/libchilld.a
LIBCLIENT_A = $(BUILD)/lib/libchillclient.a
LIBCLIENT_SO = $(BUILD)/lib/libchillclient.so
CHILLD   = $(BUILD)/bin/chilld
CHILLCTL = $(BUILD)/bin/chillctl
UNIT_BIN = $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_C))
FUZZ_BIN = $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_C))

LDLIBS_SRV = -lmicrohttpd -luv $(LDLIBS_CHILL)
LDLIBS_CLI = -lcurl -luv $(LDLIBS_CHILL)

.PHONY: all deps test check unit integration asan tsan fuzz fuzz-targets run test-gpu bench-cpu bench-server bench-gpu bench-multi-gpu clean

all: $(LIBCHILL_A) $(LIBCHILL_SO) $(if $(wildcard server/main.c),$(CHILLD)) \
     $(if $(CLI_C),$(LIBCLIENT_A) $(LIBCLIENT_SO)) $(if $(CTL_C),$(CHILLCTL))

# ---- compile -----------------------------------------------------------------
$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(CFLAGS_$(notdir $*)) -MMD -MP -c $< -o $@

$(BUILD)/obj/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(CPPFLAGS) $(NVCCFLAGS) -MMD -MP -c $< -o $@

# CPU kernels for an instruction set live in files named for it; the library
# picks among them at run time by what the processor reports.
$(BUILD)/obj/%_avx2.o:   CFLAGS += -mavx2 -mfma -mf16c
$(BUILD)/obj/%_avx512.o: CFLAGS += -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma -mf16c

# ---- link --------------------------------------------------------------------
$(LIBCHILL_A): $(LIB_O)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIBCHILL_SO): $(LIB_O)
	@mkdir -p $(dir $@)
	$(CC) -shared $(LDFLAGS) -o $@ $^ $(LDLIBS_CHILL)

$(LIBCHILLD_A): $(SRV_O)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIBCLIENT_A): $(CLI_O)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIBCLIENT_SO): $(CLI_O) $(LIBCHILL_A)
	@mkdir -p $(dir $@)
	$(CC) -shared $(LDFLAGS) -o $@ $(CLI_O) $(LIBCHILL_A) $(LDLIBS_CLI)

$(CHILLD): $(BUILD)/obj/server/main.o $(LIBCHILLD_A) $(LIBCHILL_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_SRV)

$(CHILLCTL): $(call obj,$(CTL_C)) $(if $(CLI_C),$(LIBCLIENT_A)) $(LIBCHILL_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_CLI)

# A unit test is one Check suite per file, linked with everything it might use.
$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(call obj,$(TEST_LIB_C)) $(if $(SRV_C),$(LIBCHILLD_A)) $(if $(CLI_C),$(LIBCLIENT_A)) $(LIBCHILL_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -lcheck -lsubunit $(LDLIBS_SRV) -lcurl

# A fuzz target is libFuzzer's main around one parser (built by `make fuzz`, with clang).
$(BUILD)/fuzz/%: $(BUILD)/obj/tests/fuzz/%.o $(LIBCHILLD_A) $(LIBCHILL_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS_SRV)

# ---- run and test --------------------------------------------------------------
deps:
	bash deploy/install-deps.sh

test: deps
	$(MAKE) check

check: all $(UNIT_BIN)
	$(MAKE) unit && $(MAKE) integration

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

integration: all
	BUILD=$(BUILD) bash tests/integration/run.sh

asan: deps
	$(MAKE) BUILD=build/asan SANITIZE=1 CHILL_CUDA=0 check

tsan: deps
	TSAN_OPTIONS="halt_on_error=1 die_after_fork=0 $${TSAN_OPTIONS:-}" $(MAKE) BUILD=build/tsan SANITIZE=thread CHILL_CUDA=0 check

fuzz: deps
	$(MAKE) BUILD=build/fuzz CC=clang SANITIZE=fuzz CHILL_CUDA=0 fuzz-targets
	BUILD=build/fuzz bash tests/fuzz/run.sh

fuzz-targets: $(FUZZ_BIN)

run: all
	$(CHILLD) --config config/chilld.json

test-gpu: all $(UNIT_BIN)
	BUILD=$(BUILD) bash tests/gpu/run.sh

bench-cpu: all
	$(MAKE) -s $(BUILD)/bin/bench_cpu && $(BUILD)/bin/bench_cpu

bench-server: all
	BUILD=$(BUILD) bash bench/server.sh

bench-gpu: all
	BUILD=$(BUILD) bash bench/gpu.sh

bench-multi-gpu: all
	BUILD=$(BUILD) bash bench/multi_gpu.sh

$(BUILD)/bin/bench_%: $(BUILD)/obj/bench/%.o $(LIBCHILL_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_CHILL)

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
