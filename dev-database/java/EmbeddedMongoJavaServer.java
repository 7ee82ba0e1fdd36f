import de.bwaldvogel.mongo.MongoBackend;
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;

import java.util.List;

/**
 * Starts mongo-java-server on the given address: in memory (the Node test suite), or kept in an
 * H2 MVStore file when one is named (the development database of `npm start`).
 *
 * Usage: java -cp 'lib/*:classes' EmbeddedMongoJavaServer 127.0.0.1 PORT [H2_FILE]
 */
public final class EmbeddedMongoJavaServer {

    /**
     * The Node driver 7 refuses servers whose maxWireVersion is below 9 (MongoDB 4.4), and the
     * newest ServerVersion constant in mongo-java-server 1.47.0 is MONGO_5_0 (wire 8). So we
     * report MongoDB 6.0 (wire version 17) ourselves; the commands the driver then sends are the
     * same OP_MSG commands mongo-java-server already understands.
     */
    private static final MongoVersion MONGO_6_0 = new MongoVersion() {
        @Override
        public List<Integer> getVersionArray() {
            return List.of(6, 0, 0);
        }

        @Override
        public int getWireVersion() {
            return 17;
        }
    };

    public static void main(String[] args) throws Exception {
        if (args.length != 2 && args.length != 3) {
            System.err.println("usage: EmbeddedMongoJavaServer HOST PORT [H2_FILE]");
            System.exit(2);
        }
        // The H2 backend opens (or creates) the file and locks it: a second server on it fails here.
        MongoBackend backend = args.length == 3 ? new H2Backend(args[2]) : new MemoryBackend();
        backend.version(MONGO_6_0);
        MongoServer server = new MongoServer(backend);
        server.bind(args[0], Integer.parseInt(args[1]));
        // SIGTERM, SIGINT and our System.exit run this. shutdownNow() does not close the backend,
        // and H2 writes its last changes and a clean end of the file only on close.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.shutdownNow();
            backend.close();
        }));
        System.out.println("listening on " + args[0] + ":" + args[1] + (args.length == 3 ? " with its data in " + args[2] : " in memory"));

        // Our stdin is a pipe from the Node process that started us: end-of-file means it is
        // gone (even if it was killed with SIGKILL), so we go too instead of lingering.
        while (System.in.read() != -1) {
            // discard input
        }
        System.exit(0);
    }
}
