"""Builds the Jackson classes the Iceberg Spark runtime jar expects under its shaded package.

The runtime jar published on PyPI (`snowpark-connect-deps-iceberg`) refers to Jackson as
`org.apache.iceberg.shaded.com.fasterxml.jackson.*` but does not contain those classes. This
script takes Jackson's own jars (the ones pyspark ships) and writes one jar with every class
moved into that package: class names in each class file's constant pool and the service files
are rewritten, nothing else. Run by scripts/setup-spark.sh; the output is never committed.

    relocate_jackson.py OUT.jar jackson-core.jar jackson-databind.jar jackson-annotations.jar
"""
import struct
import sys
import zipfile

PREFIX = "org/apache/iceberg/shaded/"
SLASHED = b"com/fasterxml/jackson/"
DOTTED = b"com.fasterxml.jackson."

# Constant-pool entry sizes after the tag byte, for every tag except Utf8 (variable length).
FIXED = {3: 4, 4: 4, 5: 8, 6: 8, 7: 2, 8: 2, 9: 4, 10: 4, 11: 4, 12: 4, 15: 3, 16: 2, 17: 4, 18: 4, 19: 2, 20: 2}


def relocate_text(data: bytes) -> bytes:
    data = data.replace(SLASHED, PREFIX.encode() + SLASHED)
    return data.replace(DOTTED, PREFIX.replace("/", ".").encode() + DOTTED)


def relocate_class(data: bytes) -> bytes:
    if data[:4] != b"\xca\xfe\xba\xbe":
        raise ValueError("not a class file")
    count = struct.unpack_from(">H", data, 8)[0]
    out = bytearray(data[:10])
    pos, index = 10, 1
    while index < count:
        tag = data[pos]
        if tag == 1:
            length = struct.unpack_from(">H", data, pos + 1)[0]
            text = relocate_text(data[pos + 3 : pos + 3 + length])
            out += bytes([1]) + struct.pack(">H", len(text)) + text
            pos += 3 + length
        elif tag in FIXED:
            out += data[pos : pos + 1 + FIXED[tag]]
            pos += 1 + FIXED[tag]
        else:
            raise ValueError(f"unknown constant-pool tag {tag} at byte {pos}")
        # Longs and doubles take two constant-pool slots.
        index += 2 if tag in (5, 6) else 1
    out += data[pos:]
    return bytes(out)


def main() -> None:
    target, sources = sys.argv[1], sys.argv[2:]
    written = 0
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        for source in sources:
            with zipfile.ZipFile(source) as jar:
                for name in jar.namelist():
                    # Multi-release variants and module descriptors would name the old package.
                    if name.startswith("META-INF/versions/") or name.endswith("module-info.class"):
                        continue
                    if name.startswith("com/fasterxml/jackson/") and name.endswith(".class"):
                        out.writestr(PREFIX + name, relocate_class(jar.read(name)))
                        written += 1
                    elif name.startswith("META-INF/services/com.fasterxml.jackson."):
                        service = name[len("META-INF/services/") :]
                        out.writestr("META-INF/services/" + PREFIX.replace("/", ".") + service, relocate_text(jar.read(name)))
    print(f"relocated {written} classes into {target}")


if __name__ == "__main__":
    main()
