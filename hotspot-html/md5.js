/* MD5 (RFC 1321) for the hotspot CHAP login, in plain ES5 so old Android
   WebViews run it. hexMD5(s) hashes each char code as ONE byte (& 0xff):
   RouterOS emits chap-id and chap-challenge as octal escapes ("\371"), so
   every char is already a byte value 0-255. */
var hexMD5 = (function () {
  var K = [
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee,
    0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be,
    0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa,
    0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
    0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c,
    0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05,
    0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039,
    0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1,
    0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391
  ];
  var S = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];

  function wordHex(w) {
    var out = '', i, b;
    for (i = 0; i < 4; i++) {
      b = (w >>> (i * 8)) & 0xff;
      out += (b < 16 ? '0' : '') + b.toString(16);
    }
    return out;
  }

  return function (s) {
    var n = s.length, nw = (((n + 8) >>> 6) + 1) * 16, x = [], i, j;
    var a = 0x67452301, b = 0xefcdab89 | 0, c = 0x98badcfe | 0, d = 0x10325476;
    var aa, bb, cc, dd, f, g, t, r;
    for (i = 0; i < nw; i++) { x[i] = 0; }
    for (i = 0; i < n; i++) { x[i >> 2] |= (s.charCodeAt(i) & 0xff) << ((i % 4) * 8); }
    x[n >> 2] |= 0x80 << ((n % 4) * 8);
    // message length in bits, 64-bit little-endian (low word, then high word)
    x[nw - 2] = (n * 8) | 0;
    x[nw - 1] = Math.floor(n / 536870912);
    for (i = 0; i < nw; i += 16) {
      aa = a; bb = b; cc = c; dd = d;
      for (j = 0; j < 64; j++) {
        if (j < 16) { f = (b & c) | (~b & d); g = j; }
        else if (j < 32) { f = (d & b) | (~d & c); g = (5 * j + 1) % 16; }
        else if (j < 48) { f = b ^ c ^ d; g = (3 * j + 5) % 16; }
        else { f = c ^ (b | ~d); g = (7 * j) % 16; }
        // four int32 values sum exactly in a double; | 0 wraps to 32 bits
        t = (a + f + K[j] + x[i + g]) | 0;
        r = S[(j >> 4) * 4 + (j % 4)];
        a = d; d = c; c = b;
        b = (b + ((t << r) | (t >>> (32 - r)))) | 0;
      }
      a = (a + aa) | 0; b = (b + bb) | 0; c = (c + cc) | 0; d = (d + dd) | 0;
    }
    return wordHex(a) + wordHex(b) + wordHex(c) + wordHex(d);
  };
})();
