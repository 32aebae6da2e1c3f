// The one translation unit that compiles stb_image (decoding) and stb_image_write (PNG output) from Debian's
// libstb-dev headers. Decoding is limited to the formats graft reads (JPEG, PNG): less third-party parser code
// exposed to untrusted files. STBI_MAX_DIMENSIONS makes stb itself refuse sides above 32768, matching the check in
// decode_image (io/image_folder.cpp). Other files include the headers without the implementation defines.
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#endif

#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_MAX_DIMENSIONS (1 << 15)
// stb's asserts are internal consistency checks that corrupt files can trip (e.g. a JPEG Huffman code that maps to
// the wrong symbol); a Release build compiles them out, so every build does: a bad file must not abort the process.
// The out-of-bounds cases behind such asserts are closed by the checks io/stb_patch.cmake adds to stb 2.27.
#define STBI_ASSERT(x) ((void)0)
#include <stb/stb_image.h>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
