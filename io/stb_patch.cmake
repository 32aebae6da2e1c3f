# stb_image 2.27 (Debian 12's libstb-dev) has JPEG out-of-bounds bugs that upstream fixed in 2.28 and that
# tests/fuzz/fuzz_image finds within a minute: a Huffman table listing more than 256 symbols overflows the table
# arrays (a heap write), and a code that matches no symbol indexes past them (a heap read); a zero-length PNG chunk
# also passes NULL to memcpy (undefined behaviour, reported by UBSan). io/stb_image_impl.cpp
# compiles a copy of the header with those checks added (and two for DC overflows, below); a header that needs no patch is used as it is,
# and an old header whose text differs from the expected one stops the configure step rather than build unpatched.
# (The snippets hold ';', so they are separate variables, not a CMake list.)
find_path(GRAFT_STB_INCLUDE_DIR stb/stb_image.h REQUIRED)
file(READ ${GRAFT_STB_INCLUDE_DIR}/stb/stb_image.h GRAFT_STB_TEXT)
if(GRAFT_STB_TEXT MATCHES "stb_image - v2\\.(2[0-7]|1[0-9])[^0-9]")
  set(GRAFT_STB_FROM_1 "               n += sizes[i];\n            }\n")
  set(GRAFT_STB_TO_1 "${GRAFT_STB_FROM_1}            if (n > 256) return stbi__err(\"bad DHT header\",\"Corrupt JPEG\"); // graft: upstream 2.28 fix\n")
  set(GRAFT_STB_FROM_2 "   c = ((j->code_buffer >> (32 - k)) & stbi__bmask[k]) + h->delta[k];\n")
  set(GRAFT_STB_TO_2 "${GRAFT_STB_FROM_2}   if (c < 0 || c >= 256) return -1; // graft: upstream 2.28 fix\n")
  # 3: a PNG chunk of length 0 reaches memcpy(NULL, src, 0) (UB that UBSan reports; the fuzzer finds it).
  set(GRAFT_STB_FROM_3 "      memcpy(buffer, s->img_buffer, n);\n")
  set(GRAFT_STB_TO_3 "      if (n > 0) memcpy(buffer, s->img_buffer, n); // graft: no memcpy from/to NULL for n == 0\n")
  # 4, 5: a DC coefficient accumulated over corrupt blocks overflows int when scaled (signed overflow, UB that UBSan
  # reports; the fuzzer found it, tests/fuzz/image_corpus/regress_jpeg_dc_overflow.jpg): refused when it leaves the
  # 16-bit range the coefficient is stored in (upstream 2.28 checks the same with stbi__mul2shorts_valid).
  set(GRAFT_STB_FROM_4 "      data[0] = (short) (dc * (1 << j->succ_low));\n")
  set(GRAFT_STB_TO_4 "      if (dc < -32768 || dc > 32767 || dc * (1 << j->succ_low) < -32768 || dc * (1 << j->succ_low) > 32767) return stbi__err(\"bad DC\",\"Corrupt JPEG\"); // graft: upstream 2.28 fix\n${GRAFT_STB_FROM_4}")
  set(GRAFT_STB_FROM_5 "   data[0] = (short) (dc * dequant[0]);\n")
  set(GRAFT_STB_TO_5 "   if (dc < -32768 || dc > 32767) return stbi__err(\"bad DC\",\"Corrupt JPEG\"); // graft: upstream 2.28 fix\n${GRAFT_STB_FROM_5}")
  foreach(fix 1 2 3 4 5)
    string(FIND "${GRAFT_STB_TEXT}" "${GRAFT_STB_FROM_${fix}}" at)
    if(at EQUAL -1)
      message(FATAL_ERROR "io/stb_patch.cmake: fix ${fix} does not apply to ${GRAFT_STB_INCLUDE_DIR}/stb/stb_image.h")
    endif()
    string(REPLACE "${GRAFT_STB_FROM_${fix}}" "${GRAFT_STB_TO_${fix}}" GRAFT_STB_TEXT "${GRAFT_STB_TEXT}")
  endforeach()
  file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/stb_patched/stb)
  file(WRITE ${CMAKE_BINARY_DIR}/stb_patched/stb_image.h.new "${GRAFT_STB_TEXT}")
  file(COPY_FILE ${CMAKE_BINARY_DIR}/stb_patched/stb_image.h.new ${CMAKE_BINARY_DIR}/stb_patched/stb/stb_image.h
       ONLY_IF_DIFFERENT)
  set_source_files_properties(io/stb_image_impl.cpp PROPERTIES INCLUDE_DIRECTORIES ${CMAKE_BINARY_DIR}/stb_patched)
endif()
