import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import org.apache.kafka.clients.producer.internals.BuiltInPartitioner;
import org.apache.kafka.common.utils.Utils;

/**
 * Reference vectors for pipeline/kafka/_partitioner.py, computed by the Kafka Java client itself.
 *
 * <p>Reads keys from stdin, one per line ('\n'-separated, taken as raw bytes: no charset decoding,
 * so any UTF-8 or non-UTF-8 byte sequence without '\n' is hashed exactly as given), and prints one
 * line per key: {@code key<TAB>murmur2}, where murmur2 is {@code Utils.murmur2(keyBytes)} as a
 * signed decimal int. Each further argument N adds a column {@code <TAB>partition}, the partition
 * of {@code BuiltInPartitioner.partitionForKey(keyBytes, N)}, the producer's default choice for a
 * keyed record on a topic of N partitions.
 *
 * <p>With {@code --hex} as first argument, keys are read and echoed as lowercase hex, so any byte
 * sequence (newlines included) can be hashed; an empty line is the empty key.
 *
 * <p>Usage: {@code java -cp kafka-clients.jar:. Murmur2Vectors [--hex] [N ...] < keys}
 */
public final class Murmur2Vectors {
    private Murmur2Vectors() {
    }

    public static void main(String[] args) throws IOException {
        boolean hex = false;
        List<Integer> counts = new ArrayList<>();
        for (String arg : args) {
            if (arg.equals("--hex")) {
                hex = true;
            } else {
                counts.add(Integer.parseInt(arg));
            }
        }
        byte[] input = System.in.readAllBytes();
        OutputStream out = new BufferedOutputStream(System.out, 1 << 16);
        int start = 0;
        while (start < input.length) {
            int end = start;
            while (end < input.length && input[end] != '\n') {
                end++;
            }
            byte[] line = java.util.Arrays.copyOfRange(input, start, end);
            byte[] key = hex ? fromHex(line) : line;
            out.write(line);
            StringBuilder row = new StringBuilder();
            row.append('\t').append(Utils.murmur2(key));
            for (int n : counts) {
                row.append('\t').append(BuiltInPartitioner.partitionForKey(key, n));
            }
            row.append('\n');
            out.write(row.toString().getBytes(StandardCharsets.US_ASCII));
            start = end + 1;
        }
        out.flush();
    }

    private static byte[] fromHex(byte[] text) {
        if (text.length % 2 != 0) {
            throw new IllegalArgumentException("odd-length hex line");
        }
        byte[] bytes = new byte[text.length / 2];
        for (int i = 0; i < bytes.length; i++) {
            int hi = Character.digit(text[2 * i], 16);
            int lo = Character.digit(text[2 * i + 1], 16);
            if (hi < 0 || lo < 0) {
                throw new IllegalArgumentException("bad hex digit");
            }
            bytes[i] = (byte) ((hi << 4) | lo);
        }
        return bytes;
    }
}
