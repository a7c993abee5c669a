# Included into chatllm.cpp's CMake project by tools/build_engine.sh for the sanitizer variants (CMAKE_PROJECT_INCLUDE),
# with ASRBENCH_SANITIZER (address or thread) and ASRBENCH_MODELS (the model files to build, ';'-separated, or "all").
#
# It instruments libchatllm's own code (src/, models/) at -O1 -g, as the sanitizers' documentation advises. ggml is
# compiled exactly as in the release library (so ccache reuses its objects); ASan's and TSan's interceptors still see
# every allocation, free and thread ggml makes, while use-after-free and data races are caught in chatllm.cpp's own
# code. Only the model files the sanitizer tests load are compiled (each model family registers itself from its own
# file, so the others are simply absent); the link refuses any undefined symbol, so a missing file shows at build time.
if(PROJECT_NAME STREQUAL "ChatLLM.cpp")
  function(asrbench_sanitize)
    if(NOT ASRBENCH_MODELS STREQUAL "all")
      get_target_property(sources libchatllm SOURCES)
      set(kept "")
      foreach(source IN LISTS sources)
        if(NOT source MATCHES "^models/" OR source IN_LIST ASRBENCH_MODELS)
          list(APPEND kept "${source}")
        endif()
      endforeach()
      set_property(TARGET libchatllm PROPERTY SOURCES ${kept})
    endif()
    target_compile_options(libchatllm PRIVATE -fsanitize=${ASRBENCH_SANITIZER} -fno-omit-frame-pointer -O1 -g)
    target_link_options(libchatllm PRIVATE -fsanitize=${ASRBENCH_SANITIZER} -Wl,--no-undefined)
  endfunction()
  cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL asrbench_sanitize)
endif()
