# Read after a generated tflm Makefile (make -f Makefile -f harness.mk ...): links main.cc as a
# library (-DTFLM_APP_NO_MAIN) with harness.cc and the images file into $(APP), with the
# generated Makefile's own compiler and link flags, warnings as errors.
#   HARNESS_DIR  this folder (harness.cc)
#   IMAGES       the .c file make_images.py wrote
ifeq ($(strip $(HARNESS_DIR)),)
$(error HARNESS_DIR is not set)
endif
ifeq ($(strip $(IMAGES)),)
$(error IMAGES is not set)
endif

CFLAGS += -Werror
CXXFLAGS += -Werror -DTFLM_APP_NO_MAIN
HARNESS_OBJS := $(BUILD)/harness.o $(BUILD)/images.o
# The generated link rule's prerequisites were fixed when it was read; its recipe expands OBJS
# when it runs, so the harness objects are both added here and linked there.
OBJS += $(HARNESS_OBJS)
$(APP): $(HARNESS_OBJS)

$(BUILD)/harness.o: $(HARNESS_DIR)/harness.cc | $(BUILD)
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(BUILD)/images.o: $(IMAGES) | $(BUILD)
	$(CC) $(CFLAGS) -c $< -o $@
