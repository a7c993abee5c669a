# Included into chatllm.cpp's CMake project by tools/build_engine.sh for the *-asan variants (CMAKE_PROJECT_INCLUDE).
# It instruments libchatllm's own code (src/, models/) with AddressSanitizer. ggml is compiled exactly as in the release
# library (so ccache reuses its objects); ASan's malloc/free interceptors still see every allocation ggml makes, so a
# leak or an invalid free anywhere is reported, while use-after-free is caught in chatllm.cpp's own code.
if(PROJECT_NAME STREQUAL "ChatLLM.cpp")
  cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL
                 target_compile_options libchatllm PRIVATE -fsanitize=address -fno-omit-frame-pointer)
  cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL target_link_options libchatllm PRIVATE -fsanitize=address)
endif()
