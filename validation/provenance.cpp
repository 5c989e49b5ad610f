#include "validation/provenance.hpp"

#include "reference/status.hpp"

#include <dsv4lab/build_info.hpp>

#include <cstdio>
#include <fstream>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define DSV4LAB_SHA_NI 1
#endif

namespace dsv4::validation {

namespace {

constexpr std::array<std::uint32_t, 64> kRound{
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

constexpr std::uint32_t rotr(std::uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

}  // namespace

#ifdef DSV4LAB_SHA_NI
namespace {

// SHA-256 compression of n blocks with the x86 SHA extensions. The state lives in two
// registers in the order the instructions want: abef = (lanes 3..0) A, B, E, F and
// cdgh = C, D, G, H. Each group of 4 rounds adds K to 4 message words, sha256rnds2 does
// two rounds (low half), the shuffled high half two more; message words 16.. come from
// sha256msg1 (W[i] + s0(W[i+1])), + W[i+9] (alignr), then sha256msg2 (s1 terms).
__attribute__((target("sha,sse4.1,ssse3"))) void sha_ni_blocks(std::uint32_t* h, const std::uint8_t* p,
                                                                std::size_t n) {
  const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
  __m128i t = _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h)), 0xB1);      // B A D C
  __m128i cdgh = _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + 4)), 0x1B);  // H G F E
  __m128i abef = _mm_alignr_epi8(t, cdgh, 8);                                                        // F E B A
  cdgh = _mm_blend_epi16(cdgh, t, 0xF0);                                                             // H G D C
  for (std::size_t b = 0; b < n; ++b, p += 64) {
    const __m128i abef0 = abef, cdgh0 = cdgh;
    __m128i m[4];
    for (int j = 0; j < 4; ++j)
      m[j] = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * j)), bswap);
    for (int j = 0; j < 16; ++j) {
      __m128i w;
      if (j < 4) {
        w = m[j];
      } else {
        const __m128i w9 = _mm_alignr_epi8(m[(j - 1) & 3], m[(j - 2) & 3], 4);
        w = _mm_sha256msg2_epu32(_mm_add_epi32(_mm_sha256msg1_epu32(m[j & 3], m[(j - 3) & 3]), w9), m[(j - 1) & 3]);
        m[j & 3] = w;
      }
      __m128i wk = _mm_add_epi32(w, _mm_loadu_si128(reinterpret_cast<const __m128i*>(&kRound[static_cast<std::size_t>(4 * j)])));
      cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);  // cdgh now holds the new ABEF
      wk = _mm_shuffle_epi32(wk, 0x0E);
      abef = _mm_sha256rnds2_epu32(abef, cdgh, wk);  // back in order: abef = ABEF
    }
    abef = _mm_add_epi32(abef, abef0);
    cdgh = _mm_add_epi32(cdgh, cdgh0);
  }
  t = _mm_shuffle_epi32(abef, 0x1B);        // A B E F (lanes 0..3)
  cdgh = _mm_shuffle_epi32(cdgh, 0xB1);     // G H C D
  _mm_storeu_si128(reinterpret_cast<__m128i*>(h), _mm_blend_epi16(t, cdgh, 0xF0));     // A B C D
  _mm_storeu_si128(reinterpret_cast<__m128i*>(h + 4), _mm_alignr_epi8(cdgh, t, 8));    // E F G H
}

bool cpu_has_sha() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 19)) || !(c & (1u << 9))) return false;  // SSE4.1, SSSE3
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  return (b >> 29) & 1u;  // SHA
}

}  // namespace
#endif

bool Sha256::hardware_available() {
#ifdef DSV4LAB_SHA_NI
  static const bool has = cpu_has_sha();
  return has;
#else
  return false;
#endif
}

Sha256::Sha256(bool allow_hardware)
    : hw_(allow_hardware && hardware_available()),
      h_{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19} {}

void Sha256::blocks(const std::uint8_t* p, std::size_t n) {
#ifdef DSV4LAB_SHA_NI
  if (hw_) {
    sha_ni_blocks(h_.data(), p, n);
    return;
  }
#endif
  for (std::size_t i = 0; i < n; ++i) block(p + 64 * i);
}

void Sha256::block(const std::uint8_t* p) {
  std::uint32_t w[64];
  for (int i = 0; i < 16; ++i)
    w[i] = (std::uint32_t{p[4 * i]} << 24) | (std::uint32_t{p[4 * i + 1]} << 16) | (std::uint32_t{p[4 * i + 2]} << 8) |
           std::uint32_t{p[4 * i + 3]};
  for (int i = 16; i < 64; ++i) {
    const std::uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    const std::uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  std::uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4], f = h_[5], g = h_[6], h = h_[7];
  for (int i = 0; i < 64; ++i) {
    const std::uint32_t S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
    const std::uint32_t ch = (e & f) ^ (~e & g);
    const std::uint32_t t1 = h + S1 + ch + kRound[static_cast<std::size_t>(i)] + w[i];
    const std::uint32_t S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
    const std::uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
    const std::uint32_t t2 = S0 + maj;
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  h_[0] += a; h_[1] += b; h_[2] += c; h_[3] += d;
  h_[4] += e; h_[5] += f; h_[6] += g; h_[7] += h;
}

void Sha256::update(std::span<const std::uint8_t> data) {
  length_ += data.size();
  std::size_t i = 0;
  if (used_ > 0) {
    while (used_ < 64 && i < data.size()) buf_[used_++] = data[i++];
    if (used_ < 64) return;
    blocks(buf_.data(), 1);
    used_ = 0;
  }
  const std::size_t whole = (data.size() - i) / 64;
  blocks(data.data() + i, whole);
  i += whole * 64;
  while (i < data.size()) buf_[used_++] = data[i++];
}

void Sha256::update(std::string_view s) {
  update(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()));
}

std::array<std::uint8_t, 32> Sha256::digest() {
  const std::uint64_t bit_len = length_ * 8;
  const std::uint8_t one = 0x80, zero = 0;
  update(std::span<const std::uint8_t>(&one, 1));
  while (used_ != 56) update(std::span<const std::uint8_t>(&zero, 1));
  std::uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<std::uint8_t>(bit_len >> (56 - 8 * i));
  update(std::span<const std::uint8_t>(len, 8));
  std::array<std::uint8_t, 32> out{};
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 4; ++j) out[static_cast<std::size_t>(4 * i + j)] = static_cast<std::uint8_t>(h_[static_cast<std::size_t>(i)] >> (24 - 8 * j));
  return out;
}

std::string Sha256::hex_digest() {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (auto b : digest()) {
    s += digits[b >> 4];
    s += digits[b & 15];
  }
  return s;
}

std::string sha256_hex(std::string_view data) {
  Sha256 h;
  h.update(data);
  return h.hex_digest();
}

std::string sha256_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) raise(Errc::io, "cannot open '" + file.string() + "' to hash it");
  Sha256 h;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto n = static_cast<std::size_t>(in.gcount());
    if (n) h.update(std::string_view(buf.data(), n));
  }
  if (in.bad()) raise(Errc::io, "read failed while hashing '" + file.string() + "'");
  return h.hex_digest();
}

std::string shell_quote(std::string_view arg) {
  if (arg.empty()) return "''";
  bool safe = true;
  for (char c : arg) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    std::string_view("@%_-+=:,./").find(c) != std::string_view::npos;
    safe = safe && ok;
  }
  if (safe) return std::string(arg);
  std::string s = "'";
  for (char c : arg) s += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return s + "'";
}

std::string command_line(const std::vector<std::string>& args) {
  std::string s;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (i) s += ' ';
    s += shell_quote(args[i]);
  }
  return s;
}

std::string command_line(int argc, const char* const* argv) {
  std::vector<std::string> args;
  for (int i = 0; i < argc; ++i) args.emplace_back(argv[i]);
  return command_line(args);
}

std::string current_command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  if (!in) return {};
  std::vector<std::string> args;
  std::string arg;
  while (std::getline(in, arg, '\0')) args.push_back(arg);
  return command_line(args);
}

Provenance build_provenance() {
  Provenance p;
  p.version = build::kVersion;
  p.git_commit = build::kGitCommit;
  p.build_type = build::kBuildType;
  p.build_flags = build::kFlags;
  p.cxx_compiler = build::kCxxCompiler;
#if defined(DSV4LAB_HAVE_CUDA)
  p.cuda_compiler = build::kCudaCompiler;
#endif
  p.gpu = "none";
  return p;
}

}  // namespace dsv4::validation
