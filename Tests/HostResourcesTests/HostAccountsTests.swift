import HostResources
import Testing

struct HostAccountsTests {
    @Test func usersAndGroupsAreReadFromTheFiles() {
        let passwd = """
        root:x:0:0:root:/root:/bin/bash
        # a comment
        daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
        alice:x:300001:5000:Alice:/home/alice:/bin/sh
        broken line without fields
        bad:x:notanumber:7::/:/bin/false
        """
        let group = """
        root:x:0:
        staff:x:50:alice
        skiff:x:300007:
        :x:9:
        """
        let a = HostAccounts(passwd: passwd, group: group)
        #expect(a.uids == [0, 1, 300_001])
        #expect(a.gids == [0, 1, 5000, 50, 300_007])
        #expect(a.groups == ["root": 0, "staff": 50, "skiff": 300_007])
        #expect(a.names(300_001) && a.names(300_007) && a.names(5000))
        #expect(!a.names(300_002))
    }

    @Test func theHostsFilesNameRoot() {
        let a = HostAccounts.read()
        #expect(a.uids.contains(0) && a.groups["root"] == 0)
        #expect(HostAccounts.read(passwd: "/nonexistent/passwd", group: "/nonexistent/group") == HostAccounts())
    }
}
