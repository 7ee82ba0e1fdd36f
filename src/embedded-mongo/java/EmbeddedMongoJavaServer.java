import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;

import java.util.List;

/**
 * Starts mongo-java-server (in-memory backend) on the given address for the Node test suite.
 *
 * Usage: java -cp 'lib/*:classes' EmbeddedMongoJavaServer 127.0.0.1 PORT
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
        if (args.length != 2) {
            System.err.println("usage: EmbeddedMongoJavaServer HOST PORT");
            System.exit(2);
        }
        MongoServer server = new MongoServer(new MemoryBackend().version(MONGO_6_0));
        server.bind(args[0], Integer.parseInt(args[1]));
        Runtime.getRuntime().addShutdownHook(new Thread(server::shutdownNow));
        System.out.println("listening on " + args[0] + ":" + args[1]);

        // Our stdin is a pipe from the Node process that started us: end-of-file means it is
        // gone (even if it was killed with SIGKILL), so we go too instead of lingering.
        while (System.in.read() != -1) {
            // discard input
        }
        System.exit(0);
    }
}
